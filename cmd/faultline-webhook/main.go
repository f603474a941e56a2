// Command faultline-webhook serves the pod injector: flags -> config -> run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	fwebhook "github.com/faultline-dev/faultline/webhook"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	cfg := fwebhook.DefaultConfig()
	cfg.Version = version
	var (
		certDir      = flag.String("cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with tls.crt and tls.key")
		port         = flag.Int("webhook-port", 9443, "port the webhook serves TLS on")
		metricsAddr  = flag.String("metrics-bind-address", ":8080", "address for /metrics; 0 disables")
		probeAddr    = flag.String("health-probe-bind-address", ":8081", "address for /healthz and /readyz")
		leaderElect  = flag.Bool("leader-elect", false, "elect a leader for controllers that must run once")
		ownNamespace = flag.String("namespace", os.Getenv("POD_NAMESPACE"), "faultline's own namespace (never injected)")
		mode         = flag.String("sidecar-mode", string(cfg.SidecarMode), "native (init container with restartPolicy Always) or classic")
		certs        = certOptions{}
	)
	flag.StringVar(&certs.mode, "cert-mode", certsExternal, "external (cert-manager or another tool fills --cert-dir) or self-signed (faultline rotates its own CA in --cert-secret)")
	flag.StringVar(&certs.secret, "cert-secret", "faultline-webhook-tls", "Secret holding the self-signed CA and serving certificate")
	flag.StringVar(&certs.service, "service-name", "faultline-webhook", "Service in front of the webhook (the certificate's DNS name)")
	flag.StringVar(&certs.mutating, "mutating-webhook-configuration", fwebhook.ConfigurationName, "MutatingWebhookConfiguration whose caBundle self-signed mode keeps current")
	flag.StringVar(&certs.validating, "validating-webhook-configuration", fwebhook.ValidatingConfigurationName, "ValidatingWebhookConfiguration whose caBundle self-signed mode keeps current")
	flag.StringVar(&cfg.AgentImage, "agent-image", cfg.AgentImage, "image of faultline-agent")
	var agentPort int
	flag.IntVar(&agentPort, "agent-port", int(cfg.AgentPort), "port of the agent's HTTP endpoints inside the pod")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	cfg.SidecarMode = fwebhook.SidecarMode(*mode)
	cfg.AgentPort = int32(agentPort)
	certs.dir, certs.namespace = *certDir, *ownNamespace
	if certs.mode != certsExternal && certs.mode != certsSelfSigned {
		fmt.Fprintf(os.Stderr, "faultline-webhook: --cert-mode: %q is not allowed, must be %s or %s\n", certs.mode, certsExternal, certsSelfSigned)
		os.Exit(2)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "faultline-webhook:", err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("faultline-webhook")

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err) // start-up: the built-in types always register
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress: *probeAddr,
		LeaderElection:         *leaderElect,
		LeaderElectionID:       "faultline-webhook.faultline.dev",
		// Explicit: outside a pod there is no service-account file to guess from.
		LeaderElectionNamespace: *ownNamespace,
		WebhookServer:           newServer(*port, *certDir),
	})
	if err != nil {
		log.Error(err, "creating manager")
		os.Exit(1)
	}
	limiter := &policy.Policies{Source: fwebhook.ClientPolicies{Reader: mgr.GetClient()}, Decisions: policy.NewDecisionCache(4096)}
	if *ownNamespace == "" {
		log.Info("no --namespace: blast radius (maxPods, maxPercent) is not enforced")
	} else {
		// Blast-radius slots live in Leases in faultline's namespace; the
		// direct (uncached) client reads them, so every replica sees every
		// write. Group sizes come from a metadata-only pod informer.
		leases := &policy.LeaseReserver{Client: mustDirectClient(mgr), Namespace: *ownNamespace}
		groups := policy.NewGroupCounter(leases, nil)
		if err := groups.Watch(context.Background(), mgr.GetCache()); err != nil {
			log.Error(err, "setting up blast-radius group counts")
			os.Exit(1)
		}
		limiter.Reserver, limiter.Groups = leases, groups
		limiter.Owners = fwebhook.ClientOwners{Reader: mgr.GetClient()}
		sweeper := &policy.Sweeper{Reserver: leases, Interval: 30 * time.Second}
		leases.Gone = sweeper.Gone
		if _, err := policy.WatchPodMetadata(context.Background(), mgr.GetCache(), sweeper); err != nil {
			log.Error(err, "setting up the blast-radius sweeper")
			os.Exit(1)
		}
		if err := mgr.Add(sweeper); err != nil {
			log.Error(err, "setting up the blast-radius sweeper")
			os.Exit(1)
		}
	}
	specs := policy.NewSpecCache(1024)
	for _, c := range []interface {
		Register(prometheus.Registerer) error
	}{specs, limiter.Decisions} {
		if err := c.Register(metrics.Registry); err != nil {
			log.Error(err, "registering metrics")
			os.Exit(1)
		}
	}
	if err := addRotator(mgr, certs); err != nil {
		log.Error(err, "setting up certificate rotation")
		os.Exit(1)
	}
	// Decisions become Events on their pods once the informer sees them.
	notifier := fwebhook.NewNotifier(mgr.GetEventRecorder("faultline-webhook"), time.Minute)
	if _, err := policy.WatchPodMetadata(context.Background(), mgr.GetCache(), notifier); err != nil {
		log.Error(err, "setting up decision Events")
		os.Exit(1)
	}
	mgr.GetWebhookServer().Register(fwebhook.Path, &webhook.Admission{Handler: &fwebhook.Handler{
		// Safety rules first, then the ChaosPolicies: no policy, no chaos.
		Decider: &policy.Engine{
			Safety:   policy.Safety{OwnNamespace: *ownNamespace},
			Limiter:  limiter,
			Profiles: fwebhook.ClientProfiles{Reader: mgr.GetClient()},
			Specs:    specs,
		},
		Namespaces: fwebhook.ClientNamespaces{Reader: mgr.GetClient()},
		Injector:   fwebhook.NewInjector(cfg),
		Metrics:    fwebhook.NewMetrics(metrics.Registry),
		Notifier:   notifier,
	}})
	// The kill switch reaches running pods; with --leader-elect one replica does it.
	if err := (&policy.KillSwitch{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		log.Error(err, "setting up the kill switch controller")
		os.Exit(1)
	}
	// Pods that wanted chaos but were created while no replica answered.
	if err := (&fwebhook.MissedReporter{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("faultline-webhook"),
		OwnNamespace: *ownNamespace, Missed: fwebhook.NewMissedCounter(metrics.Registry)}).SetupWithManager(mgr); err != nil {
		log.Error(err, "setting up the missed-injection reporter")
		os.Exit(1)
	}
	// abortWhen: policies pause themselves when their SLO query breaches.
	if err := mgr.Add(&policy.AbortWatcher{Client: mgr.GetClient()}); err != nil {
		log.Error(err, "setting up abortWhen")
		os.Exit(1)
	}
	mgr.GetWebhookServer().Register(fwebhook.ValidatePath, &webhook.Admission{Handler: &fwebhook.WorkloadValidator{}})
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "adding healthz")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		log.Error(err, "adding readyz")
		os.Exit(1)
	}
	log.Info("starting", "version", version, "webhookPort", *port, "sidecarMode", cfg.SidecarMode, "agentImage", cfg.AgentImage)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

// mustDirectClient is a client that bypasses the informer cache.
func mustDirectClient(mgr ctrl.Manager) client.Client {
	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		panic(err) // start-up only
	}
	return c
}
