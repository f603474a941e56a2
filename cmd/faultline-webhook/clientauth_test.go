package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// issuer is a throwaway CA for the test.
type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newIssuer(t *testing.T, cn string) *issuer {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &issuer{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate and key (PEM) for cn.
func (i *issuer) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, i.cert, &key.PublicKey, i.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// With --client-ca-file the webhook answers only clients whose certificate
// that CA signed (the API server, configured to present one); anyone else on
// the pod network is turned away at the TLS handshake (issue 12 item 8).
func TestClientCertificatesAreRequiredWhenAClientCAIsGiven(t *testing.T) {
	dir := t.TempDir()
	serving := newIssuer(t, "serving-ca")
	crt, key := serving.issue(t, "faultline-webhook", x509.ExtKeyUsageServerAuth)
	_ = os.WriteFile(filepath.Join(dir, "tls.crt"), crt, 0o600)
	_ = os.WriteFile(filepath.Join(dir, "tls.key"), key, 0o600)
	clients := newIssuer(t, "apiserver-client-ca")
	caFile := filepath.Join(dir, "client-ca.crt")
	_ = os.WriteFile(caFile, clients.pem, 0o600)
	pool, err := loadClientCAs(caFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	srv := newServer(port, dir, pool)
	srv.Register("/mutate-v1-pod", &admission.Webhook{Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		return admission.Allowed("")
	})})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Start(ctx) }()

	roots := x509.NewCertPool()
	roots.AddCert(serving.cert)
	post := func(certs []tls.Certificate) error {
		c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","object":{}}}`)
		resp, err := c.Post(fmt.Sprintf("https://127.0.0.1:%d/mutate-v1-pod", port), "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	apiserver, _ := tls.X509KeyPair(clients.issue(t, "kube-apiserver", x509.ExtKeyUsageClientAuth))
	stranger, _ := tls.X509KeyPair(newIssuer(t, "someone").issue(t, "attacker", x509.ExtKeyUsageClientAuth))
	deadline := time.Now().Add(10 * time.Second)
	for post([]tls.Certificate{apiserver}) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the API server's certificate was not accepted: %v", post([]tls.Certificate{apiserver}))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := post(nil); err == nil {
		t.Error("a client without a certificate was answered")
	}
	if err := post([]tls.Certificate{stranger}); err == nil {
		t.Error("a client with a certificate from another CA was answered")
	}
	if _, err := loadClientCAs(filepath.Join(dir, "tls.key")); err == nil {
		t.Error("a file without a certificate was taken as a CA bundle")
	}
}
