package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/sidecar/clockfault"
	"github.com/faultline-dev/faultline/sidecar/netfault"
	"github.com/faultline-dev/faultline/sidecar/schedule"
)

// Options configure the run loop.
type Options struct {
	Spec *v1alpha1.FaultSpec
	// Listen serves /healthz and /metrics (the pod network reaches it).
	Listen string
	// StatusListen serves /status, which names the fault's targets and the
	// pod's processes: loopback only (kubectl port-forward reaches it),
	// not the pod network. Empty serves no /status.
	StatusListen string
	PodInfoDir   string
	// TimeFile is the time shim's state file (clock faults).
	TimeFile string
	// ProcRoot is where the pod's processes are visible (/proc with
	// shareProcessNamespace); empty skips the coverage report.
	ProcRoot string
	// ClockVDSO lets the agent patch the vDSO clock functions of the
	// processes the shim does not reach (needs ProcRoot and ptrace).
	ClockVDSO bool
	// Seed varies schedule jitter between pods (the pod name).
	Seed string
	// NetRunner runs iptables/tc in the pod's netns; nil runs them here.
	NetRunner netfault.Runner
	// Exempt: the agent's own port, and the probe ports for the kubelet.
	Exempt netfault.Exemptions
	// PollInterval is how often the pause file is read; the kubelet updates
	// downward API files on its sync period, so polling loses nothing.
	PollInterval time.Duration
}

// Status is what /status returns.
type Status struct {
	Spec   *v1alpha1.FaultSpec `json:"spec"`
	Paused bool                `json:"paused"`
	// InWindow is false while the schedule has the faults off.
	InWindow bool     `json:"inWindow"`
	Applied  []string `json:"applied"`
	NotDone  []string `json:"notApplied"`
	// Errors are why faults that should be on are not (retried each tick).
	Errors    []string             `json:"errors,omitempty"`
	Processes []clockfault.Process `json:"clockProcesses,omitempty"`
	// Capabilities of the pod's kernel, probed at start.
	Capabilities *netfault.Capabilities `json:"capabilities,omitempty"`
	// HTTP is what the HTTP proxy has seen, with http rules.
	HTTP      *HTTPStatus `json:"http,omitempty"`
	UpdatedAt time.Time   `json:"updatedAt"`
}

// Agent is the sidecar's state.
type Agent struct {
	opts     Options
	schedule schedule.Schedule
	start    time.Time
	clock    *clockDriver
	net      *netDriver
	mu       sync.Mutex
	status   Status
	reg      *prometheus.Registry
	paused   prometheus.Gauge
	active   *prometheus.GaugeVec
	affected *prometheus.GaugeVec
	methods  *prometheus.GaugeVec
	applyDur *prometheus.HistogramVec
	caps     *prometheus.GaugeVec
	errs     *prometheus.CounterVec
	// lastErr is the last apply error per kind: logged when it changes,
	// not on every tick, and shown in /status until it clears.
	lastErr map[string]string
}

// New builds an agent; nothing starts until Run.
func New(opts Options) (*Agent, error) {
	if opts.PollInterval == 0 {
		opts.PollInterval = time.Second
		if opts.ClockVDSO {
			// Each tick looks for new processes: one started later is
			// patched within half a second.
			opts.PollInterval = 500 * time.Millisecond
		}
	}
	sch, err := schedule.Parse(opts.Spec.Schedule, opts.Seed)
	if err != nil {
		return nil, err
	}
	a := &Agent{opts: opts, schedule: sch, reg: prometheus.NewRegistry()}
	a.paused = prometheus.NewGauge(prometheus.GaugeOpts{Name: "faultline_agent_paused", Help: "1 while the pod's faultline.dev/paused annotation is true."})
	a.active = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "faultline_agent_fault_active", Help: "1 while faults of this kind are applied."}, []string{"kind"})
	a.affected = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "faultline_agent_clock_affected_processes",
		Help: "Processes the agent can see, by whether the time shim is loaded in them."}, []string{"affected"})
	a.methods = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "faultline_agent_clock_processes",
		Help: "Processes the agent can see, by the method that fakes their clock: shim (LD_PRELOAD), vdso (patched vDSO) or none."}, []string{"method"})
	a.applyDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "faultline_agent_network_change_duration_seconds",
		Help: "Time to apply or remove the network rules.", Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, 1}}, []string{"op"})
	a.caps = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "faultline_agent_capability",
		Help: "1 when the pod's kernel offers the feature (netem, nfqueue), probed at start."}, []string{"name"})
	delayed := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "faultline_agent_packets_delayed_total",
		Help: "Packets the NFQUEUE delay engine held and released."}, a.engineCount(func(e *netfault.DelayEngine) uint64 { return e.Delayed.Load() }))
	dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "faultline_agent_packets_dropped_total",
		Help: "Outgoing packets the NFQUEUE engine dropped for egress loss and partition."}, a.engineCount(func(e *netfault.DelayEngine) uint64 { return e.Dropped.Load() }))
	duplicated := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "faultline_agent_packets_duplicated_total",
		Help: "Copies of packets the NFQUEUE engine delivered for duplicate faults."}, a.engineCount(func(e *netfault.DelayEngine) uint64 { return e.Duplicated.Load() }))
	a.errs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "faultline_agent_apply_errors_total",
		Help: "Attempts to apply faults that failed (the pod runs without them meanwhile), by fault kind."}, []string{"kind"})
	a.lastErr = map[string]string{}
	a.reg.MustRegister(a.paused, a.active, a.affected, a.methods, a.applyDur, a.caps, delayed, dropped, duplicated, a.errs, newHTTPCollector(a),
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	a.status = Status{Spec: opts.Spec, Applied: []string{}, UpdatedAt: time.Now()}
	for _, k := range opts.Spec.Kinds() {
		if k == "clock" && opts.TimeFile != "" || k == "network" || k == "dns" || k == "http" {
			continue
		}
		a.status.NotDone = append(a.status.NotDone, k+": this agent version does not apply "+k+" faults yet")
	}
	if opts.Spec.HasClock() {
		if opts.TimeFile == "" {
			a.status.NotDone = append(a.status.NotDone, "clock: "+EnvTimeFile+" is not set, so there is no time shim to drive")
		} else if a.clock, err = newClockDriver(opts.Spec, opts.TimeFile); err != nil {
			return nil, fmt.Errorf("clock faults: %w", err)
		} else if opts.ClockVDSO && opts.ProcRoot != "" {
			a.clock.vdso = newVDSODriver(opts.ProcRoot)
		}
	}
	return a, nil
}

// Run serves HTTP and follows the pause annotation until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	log := logf.FromContext(ctx)
	if a.opts.Spec.HasNetwork() {
		runner := a.opts.NetRunner
		if runner == nil {
			var gated bool
			if runner, gated = netfault.HostRunner(); !gated {
				log.Info("no ipset in this kernel: faults outlive this agent if it dies, until the kubelet restarts it")
			}
		}
		nd := newNetDriver(ctx, a.opts.Spec, runner, a.opts.Exempt)
		a.mu.Lock()
		a.net = nd
		a.mu.Unlock()
		log.Info("network capabilities", "netem", a.net.caps.Netem, "nfqueue", a.net.caps.NFQueue)
		// A previous run may have crashed: start from nothing.
		if err := a.net.cleanup(ctx); err != nil {
			log.Error(err, "removing leftover rules")
		}
		a.mu.Lock()
		a.status.Capabilities = &a.net.caps
		a.mu.Unlock()
		a.caps.WithLabelValues("netem").Set(boolGauge(a.net.caps.Netem))
		a.caps.WithLabelValues("nfqueue").Set(boolGauge(a.net.caps.NFQueue))
	}
	// Listen only after the clean-up: if the port is taken (a process in
	// the pod may hold it), an agent that exited here would leave a crashed
	// run's rules in place forever, and a native sidecar that never starts
	// holds the app back. So the agent goes on without HTTP and says so.
	errc := make(chan error, 2)
	var servers []*http.Server
	for _, l := range []struct {
		addr, what string
		mux        http.Handler
	}{{a.opts.Listen, "/healthz and /metrics", a.publicMux()}, {a.opts.StatusListen, "/status", a.statusMux()}} {
		if l.addr == "" {
			continue
		}
		srv := newServer(l.mux)
		ln, err := listen(l.addr)
		if err != nil {
			log.Error(err, "cannot serve "+l.what+"; faults, pause and clean-up work without it")
			a.mu.Lock()
			a.status.Errors = append(a.status.Errors, "http: "+err.Error())
			a.mu.Unlock()
			continue
		}
		servers = append(servers, srv)
		go func() { errc <- srv.Serve(ln) }()
		log.Info("agent serving", "listen", ln.Addr().String(), "paths", l.what)
	}
	log.Info("agent running", "faults", a.opts.Spec.Kinds(), "notApplied", a.status.NotDone)
	if a.clock != nil {
		log.Info("clock faults reach dynamically linked programs only: statically linked binaries (most Go programs) keep real time")
	}

	t := time.NewTicker(a.opts.PollInterval)
	defer t.Stop()
	a.start = time.Now()
	a.tick(ctx, 0)
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			for _, srv := range servers {
				_ = srv.Shutdown(shutdown)
			}
			a.cleanup(ctx)
			return nil
		case err := <-errc:
			a.cleanup(ctx)
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case <-t.C:
			a.tick(ctx, n)
		}
	}
}

// cleanup removes every fault this agent applied: real time comes back for
// every process at its next clock call, the rules leave the netns. It runs
// after ctx is cancelled (SIGTERM), so it works on a context of its own.
func (a *Agent) cleanup(parent context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 5*time.Second)
	defer cancel()
	log := logf.FromContext(ctx)
	if a.clock != nil {
		if err := a.clock.stop(); err != nil {
			log.Error(err, "restoring real time")
		} else {
			log.Info("real time restored")
		}
	}
	if a.net != nil {
		start := time.Now()
		if err := a.net.cleanup(ctx); err != nil {
			log.Error(err, "removing network rules")
		} else {
			log.Info("network rules removed", "took", time.Since(start))
		}
	}
	a.active.Reset()
	log.Info("agent stopped")
}

// tick brings applied faults in line with pause and schedule; every tenth
// tick it also re-checks which processes the shim reaches.
func (a *Agent) tick(ctx context.Context, n int) {
	log := logf.FromContext(ctx)
	now := time.Now()
	paused := a.pollPause(ctx)
	inWindow := a.schedule.Active(a.start, now)
	on := !paused && inWindow
	var applied []string
	if a.clock != nil {
		changed, err := a.clock.set(on, now)
		a.noteErr(ctx, "clock", err)
		switch {
		case err != nil:
		case changed:
			log.Info("clock fault", "on", on, "paused", paused, "inWindow", inWindow)
		}
		if on && err == nil {
			applied = append(applied, "clock")
		}
		a.active.WithLabelValues("clock").Set(boolGauge(on && err == nil))
		// With vDSO patching, every tick: a process started since is
		// patched within one.
		if a.opts.ProcRoot != "" && (n%10 == 0 || a.clock.vdso != nil) {
			a.reportCoverage(ctx)
		}
	}
	var refused []string
	if a.net != nil {
		changed, took, err := a.net.set(ctx, on)
		switch {
		case err != nil:
		case changed:
			a.applyDur.WithLabelValues(map[bool]string{true: "apply", false: "remove"}[on]).Observe(took.Seconds())
			log.Info("network faults", "on", on, "active", a.net.plan.Active, "refused", a.net.plan.Refused, "took", took)
		case on && (time.Now().After(a.net.refreshAt) || len(a.net.plan.Unresolved) > 0 && n%5 == 0):
			// Host names move (looked up again when their DNS TTL runs
			// out), and rules left out wait for theirs: re-resolve and
			// re-apply if the rules changed.
			if changed, err := a.net.refresh(ctx); err != nil {
				log.Error(err, "re-resolving destinations")
			} else if changed {
				log.Info("destinations re-resolved; rules updated", "active", a.net.plan.Active, "unresolved", a.net.plan.Unresolved)
			}
		}
		if err == nil && on {
			err = errors.Join(a.net.keepAlive(ctx), a.net.unresolved())
		}
		a.noteErr(ctx, "network", err)
		// Applied: what the kernel holds, even while other rules wait
		// for their host.
		held := on && a.net.on && a.net.known
		if held {
			applied = append(applied, a.net.plan.Active...)
		}
		for _, k := range netfault.FaultKinds {
			a.active.WithLabelValues(k).Set(boolGauge(held && slices.Contains(a.net.plan.Active, k)))
		}
		refused = a.net.plan.Refused
	}
	a.mu.Lock()
	a.status.InWindow = inWindow
	a.status.Applied = append([]string{}, applied...)
	if a.net != nil && len(refused) > 0 {
		a.status.NotDone = append([]string{}, refused...)
	}
	a.status.Errors = nil
	for _, k := range []string{"clock", "network"} {
		if e := a.lastErr[k]; e != "" {
			a.status.Errors = append(a.status.Errors, k+": "+e)
		}
	}
	a.mu.Unlock()
}

// noteErr counts a failed apply and logs it when it differs from the last
// one of its kind; a success clears it.
func (a *Agent) noteErr(ctx context.Context, kind string, err error) {
	if err == nil {
		if a.lastErr[kind] != "" {
			logf.FromContext(ctx).Info("faults apply again", "kind", kind)
		}
		a.lastErr[kind] = ""
		return
	}
	a.errs.WithLabelValues(kind).Inc()
	if err.Error() != a.lastErr[kind] {
		logf.FromContext(ctx).Error(err, "cannot apply faults; the pod runs without them and the agent retries", "kind", kind)
	}
	a.lastErr[kind] = err.Error()
}

// httpDriver is the running HTTP proxies' driver, or nil.
func (a *Agent) httpDriver() *httpDriver {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.net == nil {
		return nil
	}
	return a.net.http
}

// engineCount reads one of the running engine's counters (0 without one).
func (a *Agent) engineCount(get func(*netfault.DelayEngine) uint64) func() float64 {
	return func() float64 {
		if a.net == nil {
			return 0
		}
		if e := a.net.engine.Load(); e != nil {
			return float64(get(e))
		}
		return 0
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (a *Agent) pollPause(ctx context.Context) bool {
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
	a.paused.Set(boolGauge(paused))
	return paused
}

// publicMux is what the pod network may read: liveness and metrics.
func (a *Agent) publicMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	m.Handle("/metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	return m
}

// statusMux serves the full report, on loopback.
func (a *Agent) statusMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		var hs *HTTPStatus
		if h := a.httpDriver(); h != nil {
			s := h.status()
			hs = &s
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.status.HTTP = hs
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.status)
	})
	return m
}
