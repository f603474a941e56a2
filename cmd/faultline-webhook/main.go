// Command faultline-webhook serves the pod injector: flags -> config -> run.
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

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
		clientCA     = flag.String("client-ca-file", "", "PEM CA bundle: answer only clients (the API server) with a certificate it signed; empty answers any client")
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
	bindAgentFlags(flag.CommandLine, &cfg)
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
	clientCAs, err := loadClientCAs(*clientCA)
	if err != nil {
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
		// Hand the lease over at once on SIGTERM (a rolling update), instead
		// of letting the next leader wait out its duration.
		LeaderElectionReleaseOnCancel: true,
		WebhookServer:                 newServer(*port, *certDir, clientCAs),
	})
	if err != nil {
		log.Error(err, "creating manager")
		os.Exit(1)
	}
	if err := wire(mgr, cfg, *ownNamespace, certs); err != nil {
		log.Error(err, "setting up")
		os.Exit(1)
	}
	log.Info("starting", "version", version, "webhookPort", *port, "sidecarMode", cfg.SidecarMode, "agentImage", cfg.AgentImage)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}
