package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/sidecar/dnsfault"
	"github.com/faultline-dev/faultline/sidecar/netfault"
)

// EnvProbePorts lists the kubelet's probe ports (set by the webhook).
const EnvProbePorts = v1alpha1.EnvProbePorts

// ParsePorts reads "8080,9090" into ports; bad entries are an error naming them.
func ParsePorts(s string) ([]int32, error) {
	var out []int32
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("port %q: want 1-65535", f)
		}
		out = append(out, int32(n))
	}
	return out, nil
}

// apiServerPrefixes is the in-cluster API server address, exempt unless named.
func apiServerPrefixes() []netip.Prefix {
	a, err := netip.ParseAddr(os.Getenv("KUBERNETES_SERVICE_HOST"))
	if err != nil {
		return nil
	}
	return []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}
}

// netDriver keeps faultline's iptables chains in line with what should be on.
type netDriver struct {
	runner netfault.Runner
	spec   *v1alpha1.FaultSpec
	opts   netfault.Options
	caps   netfault.Capabilities
	on     bool
	known  bool
	plan   netfault.Plan
	// engine is read by the metrics scrape, so it is swapped atomically.
	engine atomic.Pointer[netfault.DelayEngine]
	dns    *dnsfault.Interceptor
	// http runs the proxies http rules redirect to (nil: no http rules,
	// or no HTTP switch to keep a redirect from outliving this process).
	http *httpDriver
	// ttl is how long faults outlive the last keep-alive (0: DefaultTTL).
	ttl time.Duration
	// resolver looks rule hosts up; refreshAt is when the first of their
	// answers expires (their DNS TTL), so the plan is built again then.
	resolver  *ttlResolver
	refreshAt time.Time
}

// ResolvConf is the pod's resolver configuration (tests point it elsewhere).
var ResolvConf = "/etc/resolv.conf"

func newNetDriver(ctx context.Context, spec *v1alpha1.FaultSpec, runner netfault.Runner, exempt netfault.Exemptions) *netDriver {
	caps := netfault.Probe(ctx, runner)
	backend, why := netfault.DetectBackend(ctx, runner)
	logf.FromContext(ctx).Info("iptables backend", "backend", backend, "counted", why)
	if caps.IPv6 {
		// A kernel with IPv6 but without its iptables (or an image without
		// ip6tables) would make every Apply fail: IPv4 faults must not
		// depend on IPv6's. Then the pod is treated as IPv4-only, and IPv6
		// targets are refused with the reason.
		if _, err := runner.Run(ctx, nil, backend.Save6()); err != nil {
			caps.IPv6 = false
			logf.FromContext(ctx).Info("IPv6 present but its iptables are not usable: IPv4 faults only", "error", err.Error())
		}
	}
	resolver := newTTLResolver(ResolvConf)
	d := &netDriver{runner: runner, spec: spec, caps: caps, resolver: resolver, opts: netfault.Options{
		Backend:   backend,
		Exempt:    exempt,
		APIServer: apiServerPrefixes(),
		Resolve:   resolver.Resolve,
		Caps:      caps,
		Interface: netfault.DefaultInterface(ctx, runner),
	}}
	// A redirect to a proxy that died refuses the pod's connections: http
	// rules run only where the HTTP switch can stop them within a second.
	if sw, ok := runner.(interface{ ArmHTTP(context.Context) error }); ok && len(spec.HTTP) > 0 {
		h, err := newHTTPDriver(spec.HTTP, sw.ArmHTTP)
		if err != nil {
			logf.FromContext(ctx).Error(err, "http rules left out")
		} else {
			d.http = h
			d.opts.HTTP = netfault.HTTPProxy{InPort: HTTPInboundPort, OutPort: HTTPOutboundPort}
		}
	}
	return d
}

// build computes the plan (resolving host names now).
func (d *netDriver) build() error {
	plan, err := netfault.Build(d.spec, d.opts)
	if err != nil {
		return err
	}
	plan.AliveTTL = d.ttl
	d.plan = plan
	if d.resolver != nil {
		d.refreshAt = time.Now().Add(d.resolver.next())
	}
	return nil
}

// keepAlive re-arms the dead man's switch while faults are on: if this
// agent stops doing so (it died and nobody restarted it), the jumps into
// faultline's chains stop matching after the TTL.
func (d *netDriver) keepAlive(ctx context.Context) error {
	if !d.on || !d.known {
		return nil
	}
	ttl := d.ttl
	if ttl == 0 {
		ttl = netfault.DefaultTTL
	}
	return netfault.KeepAlive(ctx, d.runner, ttl)
}

// set applies or removes the rules when the desired state changes.
func (d *netDriver) set(ctx context.Context, on bool) (changed bool, took time.Duration, err error) {
	if d.known && on == d.on {
		return false, 0, nil
	}
	start := time.Now()
	if on {
		if err = d.build(); err == nil {
			// The queues and the DNS responder are up before iptables
			// sends them anything.
			if err = d.startEngine(ctx); err == nil {
				if err = d.startDNS(); err == nil {
					if err = d.startHTTP(ctx); err == nil {
						err = netfault.Apply(ctx, d.runner, d.plan)
					}
				}
			}
		}
	} else {
		err = d.release(ctx, d.opts.Backend)
	}
	if err != nil && on {
		// Fail open: nothing half-applied stays behind (shaping without
		// its rules, a DNS responder or delay queues with nothing sent to
		// them); the next tick tries again from nothing.
		if rerr := d.release(ctx); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing after a failed apply: %w", rerr))
		}
	}
	if err != nil {
		return false, time.Since(start), err
	}
	d.on, d.known = on, true
	return true, time.Since(start), nil
}

// refresh rebuilds the plan (resolving host names again) and re-applies
// when the rules differ; the payload replaces the chains atomically.
func (d *netDriver) refresh(ctx context.Context) (bool, error) {
	old := d.plan
	if err := d.build(); err != nil {
		d.plan = old
		return false, err
	}
	if d.plan.Restore == old.Restore && d.plan.RestoreMangle == old.RestoreMangle && d.plan.RestoreNat == old.RestoreNat &&
		d.plan.Restore6 == old.Restore6 && d.plan.RestoreMangle6 == old.RestoreMangle6 && d.plan.RestoreNat6 == old.RestoreNat6 &&
		slices.EqualFunc(d.plan.Shape, old.Shape, slices.Equal) {
		return false, nil
	}
	if d.http != nil {
		d.http.setTo(d.plan.HTTPTo)
	}
	return true, netfault.Apply(ctx, d.runner, d.plan)
}

// unresolved is the rules left out because a host did not resolve, as an
// error to report (the rest is applied; refresh retries them).
func (d *netDriver) unresolved() error {
	if len(d.plan.Unresolved) == 0 {
		return nil
	}
	return errors.New(strings.Join(d.plan.Unresolved, "; "))
}

// cleanup removes whatever any run of the agent left (start and SIGTERM).
func (d *netDriver) cleanup(ctx context.Context) error {
	d.known = false
	return d.release(ctx)
}

// release frees the pod's traffic first and deletes after: the HTTP switch
// is no longer re-armed, the switch sets are emptied (every gated jump
// stops matching at once), the proxies close their connections (their
// clients connect again, straight to where they were going), then the
// rules, qdiscs, queues and responders go. backends as netfault.Remove.
func (d *netDriver) release(ctx context.Context, backends ...netfault.Backend) error {
	var errs []error
	if d.http != nil {
		d.http.stopArming()
	}
	if sw, ok := d.runner.(netfault.Switch); ok {
		errs = append(errs, sw.Off(ctx))
	}
	d.stopHTTP()
	errs = append(errs, netfault.Remove(ctx, d.runner, d.opts.Interface, backends...))
	d.stopEngine()
	d.stopDNS()
	return errors.Join(errs...)
}

// startHTTP serves the proxies before the redirects exist, and tells the
// rules where this plan's connections go.
func (d *netDriver) startHTTP(ctx context.Context) error {
	if d.http == nil || len(d.plan.RestoreNat)+len(d.plan.RestoreNat6) == 0 {
		return nil
	}
	d.http.setTo(d.plan.HTTPTo)
	return d.http.start(ctx, d.caps.IPv6)
}

// stopHTTP runs after the redirects are gone: closing the proxies' client
// connections then sends the clients straight to where they were going.
func (d *netDriver) stopHTTP() {
	if d.http != nil {
		d.http.stop()
	}
}

func (d *netDriver) startDNS() error {
	if d.spec.DNS == nil || d.dns != nil {
		return nil
	}
	r, err := dnsfault.New(d.spec.DNS)
	if err != nil {
		return err
	}
	if err := r.Start(); err != nil {
		return err
	}
	d.dns = r
	return nil
}

func (d *netDriver) stopDNS() {
	if d.dns != nil {
		d.dns.Stop()
		d.dns = nil
	}
}

func (d *netDriver) startEngine(ctx context.Context) error {
	if len(d.plan.Delays) == 0 || d.engine.Load() != nil {
		return nil
	}
	// The engine outlives this call; it stops with the faults, not with ctx.
	e, err := netfault.StartDelay(context.WithoutCancel(ctx), d.plan.Delays, 0)
	if err != nil {
		return err
	}
	d.engine.Store(e)
	return nil
}

func (d *netDriver) stopEngine() {
	if e := d.engine.Swap(nil); e != nil {
		e.Stop()
	}
}

// InitAliveTTL is how long the init container's rules last without the
// sidecar.
const InitAliveTTL = 60 * time.Second

// InitNetwork is `faultline-agent init` for network faults: clear what an
// earlier pod incarnation left and apply, so the rules exist before the app's
// first connection. Running it twice gives the same rules once.
func InitNetwork(ctx context.Context, spec *v1alpha1.FaultSpec, runner netfault.Runner, exempt netfault.Exemptions) error {
	if len(spec.Network) == 0 {
		return nil // DNS needs the agent's responder: run applies it
	}
	// Only rules that work without a running agent: a DNS queue or an HTTP
	// redirect would point at a responder or proxy that exits with this
	// process, failing lookups or connections (more chaos than asked)
	// until the sidecar takes over.
	noDNS := *spec
	noDNS.DNS, noDNS.HTTP = nil, nil
	spec = &noDNS
	d := newNetDriver(ctx, spec, runner, exempt)
	// Nobody keeps init's rules alive: they must last until the sidecar,
	// which starts right after, takes over (and re-applies them).
	d.ttl = InitAliveTTL
	logf.FromContext(ctx).Info("network capabilities", "netem", d.caps.Netem, "nfqueue", d.caps.NFQueue)
	if err := d.cleanup(ctx); err != nil {
		return err
	}
	if spec.Schedule != nil {
		return nil // run decides when the first window opens
	}
	if _, _, err := d.set(ctx, true); err != nil {
		return err
	}
	logf.FromContext(ctx).Info("network rules applied", "active", d.plan.Active, "refused", d.plan.Refused, "unresolved", d.plan.Unresolved)
	// What did apply stays: the sidecar retries the rest.
	return d.unresolved()
}
