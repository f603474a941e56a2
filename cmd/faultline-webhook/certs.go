package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Certificate modes.
const (
	// certsExternal: something else (cert-manager, a mounted Secret, envtest)
	// puts tls.crt and tls.key in --cert-dir and keeps the caBundle current.
	certsExternal = "external"
	// certsSelfSigned: faultline keeps its own CA and serving certificate in
	// a Secret (open-policy-agent's cert-controller: it creates, rotates and
	// injects the caBundle into both webhook configurations); the Secret is
	// mounted at --cert-dir.
	certsSelfSigned = "self-signed"
)

type certOptions struct {
	mode, dir, secret, service, namespace string
	mutating, validating                  string
}

// addRotator starts cert-controller on the leader; every replica serves
// from the mounted Secret, reloaded by controller-runtime's certwatcher
// when the kubelet updates the files, without a restart.
func addRotator(mgr ctrl.Manager, o certOptions) error {
	if o.mode != certsSelfSigned {
		return nil
	}
	if o.namespace == "" {
		return errors.New("--cert-mode=self-signed needs --namespace (the Secret's namespace)")
	}
	dns := fmt.Sprintf("%s.%s.svc", o.service, o.namespace)
	return rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      types.NamespacedName{Namespace: o.namespace, Name: o.secret},
		CertDir:        o.dir,
		CAName:         "faultline-ca",
		CAOrganization: "faultline",
		DNSName:        dns,
		ExtraDNSNames:  []string{dns + ".cluster.local"},
		IsReady:        make(chan struct{}),
		Webhooks: []rotator.WebhookInfo{
			{Name: o.mutating, Type: rotator.Mutating},
			{Name: o.validating, Type: rotator.Validating},
		},
		RequireLeaderElection: true,
	})
}

// certGatedServer starts the webhook server only once its certificate is
// on disk: with a freshly created Secret the kubelet mounts the files up to
// a minute after the pod starts, and starting earlier would crash-loop.
// Until then /readyz fails, so the Service sends no admissions here (and
// failurePolicy Ignore covers the time until a replica is ready).
type certGatedServer struct {
	webhook.Server
	certFile string
}

func (s certGatedServer) Start(ctx context.Context) error {
	log := logf.FromContext(ctx)
	for waited := time.Duration(0); ; waited += time.Second {
		if _, err := os.Stat(s.certFile); err == nil {
			break
		}
		if waited%(30*time.Second) == 0 {
			log.Info("waiting for the serving certificate", "file", s.certFile)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	return s.Server.Start(ctx)
}

func newServer(port int, certDir string, clientCAs *x509.CertPool) webhook.Server {
	opts := webhook.Options{Port: port, CertDir: certDir}
	if clientCAs != nil {
		opts.TLSOpts = append(opts.TLSOpts, requireClientCert(clientCAs))
	}
	return certGatedServer{
		Server:   webhook.NewServer(opts),
		certFile: filepath.Join(certDir, "tls.crt"),
	}
}

// requireClientCert makes the webhook answer only clients with a
// certificate from clientCAs: the API server, configured with
// --admission-control-config-file to present one. Without it anyone on the
// pod network can send AdmissionReviews and reserve blast-radius slots.
func requireClientCert(clientCAs *x509.CertPool) func(*tls.Config) {
	return func(c *tls.Config) {
		c.ClientCAs = clientCAs
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
}

// loadClientCAs reads a PEM bundle; "" means no client verification.
func loadClientCAs(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--client-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--client-ca-file %s: no PEM certificate in it", file)
	}
	return pool, nil
}
