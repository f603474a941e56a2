package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Options configure the run loop.
type Options struct {
	Spec       *v1alpha1.FaultSpec
	Listen     string
	PodInfoDir string
	// PollInterval is how often the pause file is read; the kubelet updates
	// downward API files on its sync period, so polling loses nothing.
	PollInterval time.Duration
}

// Status is what /status returns.
type Status struct {
	Spec      *v1alpha1.FaultSpec `json:"spec"`
	Paused    bool                `json:"paused"`
	Applied   []string            `json:"applied"`
	NotDone   []string            `json:"notApplied"`
	UpdatedAt time.Time           `json:"updatedAt"`
}

// Agent is the sidecar's state.
type Agent struct {
	opts   Options
	mu     sync.Mutex
	status Status
	reg    *prometheus.Registry
	paused prometheus.Gauge
}

// New builds an agent; nothing starts until Run.
func New(opts Options) *Agent {
	if opts.PollInterval == 0 {
		opts.PollInterval = time.Second
	}
	a := &Agent{opts: opts, reg: prometheus.NewRegistry()}
	a.paused = prometheus.NewGauge(prometheus.GaugeOpts{Name: "faultline_agent_paused", Help: "1 while the pod's faultline.dev/paused annotation is true."})
	a.reg.MustRegister(a.paused, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	a.status = Status{Spec: opts.Spec, Applied: []string{}, UpdatedAt: time.Now()}
	for _, k := range opts.Spec.Kinds() {
		a.status.NotDone = append(a.status.NotDone, k+": this agent version does not apply "+k+" faults yet")
	}
	return a
}

// Run serves HTTP and follows the pause annotation until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	log := logf.FromContext(ctx)
	ln, err := net.Listen("tcp", a.opts.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.mux(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("agent running", "listen", ln.Addr().String(), "faults", a.opts.Spec.Kinds(), "notApplied", a.status.NotDone)

	t := time.NewTicker(a.opts.PollInterval)
	defer t.Stop()
	a.pollPause(ctx)
	for {
		select {
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
			log.Info("agent stopped; no rules to remove in this version")
			return nil
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case <-t.C:
			a.pollPause(ctx)
		}
	}
}

func (a *Agent) pollPause(ctx context.Context) {
	paused, err := PausedFromPodInfo(a.opts.PodInfoDir)
	if err != nil {
		// Cannot tell: behave as paused, the smaller of the two outcomes.
		paused = true
		logf.FromContext(ctx).Error(err, "reading pod annotations; treating as paused", "dir", a.opts.PodInfoDir)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if paused != a.status.Paused {
		logf.FromContext(ctx).Info("pause changed", "paused", paused)
		a.status.Paused = paused
		a.status.UpdatedAt = time.Now()
	}
	if paused {
		a.paused.Set(1)
	} else {
		a.paused.Set(0)
	}
}

func (a *Agent) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	m.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.status)
	})
	m.Handle("/metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	return m
}
