package controllers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// AbortWatcher is the rollback condition: for every ChaosPolicy with
// abortWhen it runs the Prometheus query; when the value stays above the
// threshold for the given duration, it sets the policy's kill switch (which
// the KillSwitch controller carries to the pods) and records a condition with
// the value seen. It runs once per cluster, under leader election.
type AbortWatcher struct {
	Client client.Client
	// Interval between evaluations; default 10s.
	Interval time.Duration

	// Failures counts evaluations that could not decide; nil counts none.
	Failures *AbortFailures

	mu     sync.Mutex
	breach map[string]time.Time
}

// NeedLeaderElection: one replica evaluates, or several would race to pause.
func (a *AbortWatcher) NeedLeaderElection() bool { return true }

// Start evaluates every Interval until ctx ends (a manager.Runnable).
func (a *AbortWatcher) Start(ctx context.Context) error {
	iv := a.Interval
	if iv == 0 {
		iv = 10 * time.Second
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	// At once: policies with abortWhen allow nothing until evaluated.
	a.evaluate(ctx, time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.evaluate(ctx, time.Now())
		}
	}
}

func (a *AbortWatcher) evaluate(ctx context.Context, now time.Time) {
	log := logf.FromContext(ctx)
	var l v1alpha1.ChaosPolicyList
	if err := a.Client.List(ctx, &l); err != nil {
		log.Error(err, "listing ChaosPolicies for abortWhen")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.breach == nil {
		a.breach = map[string]time.Time{}
	}
	for i := range l.Items {
		pol := &l.Items[i]
		aw := pol.Spec.AbortWhen
		if aw == nil || pol.Spec.Paused {
			delete(a.breach, pol.Name)
			continue
		}
		value, threshold, hold, failure := measure(ctx, aw, now)
		if failure != nil {
			// Fail closed: while the rollback condition cannot be read,
			// the policy admits nothing and the Guard pauses what it
			// admitted (judge reads this condition).
			a.Failures.inc(pol.Name, failure.kind)
			log.Error(failure, "abortWhen cannot be evaluated: no chaos under this policy until it can", "policy", pol.Name)
			a.setEvaluated(ctx, pol, metav1.ConditionFalse, failure.kind, failure.Error())
			delete(a.breach, pol.Name)
			continue
		}
		a.setEvaluated(ctx, pol, metav1.ConditionTrue, "Evaluated", fmt.Sprintf("%s answers; threshold %s", aw.Query, aw.Threshold))
		if value <= threshold {
			delete(a.breach, pol.Name)
			continue
		}
		since, ok := a.breach[pol.Name]
		if !ok {
			since = now
			a.breach[pol.Name] = now
		}
		if now.Sub(since) < hold {
			continue
		}
		msg := fmt.Sprintf("%s = %g, above %s for %s: policy paused itself", aw.Query, value, aw.Threshold, now.Sub(since).Round(time.Second))
		if err := a.pause(ctx, pol, msg); err != nil {
			log.Error(err, "pausing policy", "policy", pol.Name)
			continue
		}
		delete(a.breach, pol.Name)
		log.Info("abortWhen breached", "policy", pol.Name, "value", value, "threshold", aw.Threshold)
	}
}

// evalFailure is why abortWhen could not be evaluated; kind is the
// condition reason and the metric label (a closed set).
type evalFailure struct {
	kind string
	err  error
}

func (e *evalFailure) Error() string { return e.err.Error() }

// measure reads the query's value and parses threshold and for; any of
// them failing is a failure, never a pass (a typo in "for" used to abort at
// once, an unreachable Prometheus used to allow chaos).
func measure(ctx context.Context, aw *v1alpha1.AbortCondition, now time.Time) (value, threshold float64, hold time.Duration, f *evalFailure) {
	threshold, err := strconv.ParseFloat(aw.Threshold, 64)
	if err != nil {
		return 0, 0, 0, &evalFailure{"BadThreshold", fmt.Errorf("abortWhen.threshold %q: want a number", aw.Threshold)}
	}
	if aw.For != "" {
		if hold, err = v1alpha1.ParseDuration(aw.For); err != nil {
			return 0, 0, 0, &evalFailure{"BadFor", fmt.Errorf("abortWhen.for %q: %w", aw.For, err)}
		}
	}
	value, err = query(ctx, aw, now)
	switch {
	case errors.Is(err, errNoSamples):
		return 0, 0, 0, &evalFailure{"NoSamples", err}
	case err != nil:
		return 0, 0, 0, &evalFailure{"QueryFailed", err}
	}
	return value, threshold, hold, nil
}

// setEvaluated records the outcome as the AbortEvaluated condition; the
// status is written only when the condition changes.
func (a *AbortWatcher) setEvaluated(ctx context.Context, pol *v1alpha1.ChaosPolicy, status metav1.ConditionStatus, reason, msg string) {
	orig := pol.DeepCopy()
	if !meta.SetStatusCondition(&pol.Status.Conditions, metav1.Condition{Type: policy.ConditionAbortEvaluated, Status: status,
		Reason: reason, Message: msg, ObservedGeneration: pol.Generation}) {
		return
	}
	if err := a.Client.Status().Patch(ctx, pol, client.MergeFrom(orig)); err != nil {
		logf.FromContext(ctx).Error(err, "recording the abortWhen evaluation", "policy", pol.Name)
	}
}

// AbortFailures counts evaluations that failed, by policy and kind.
type AbortFailures struct{ v *prometheus.CounterVec }

// NewAbortFailures registers faultline_abort_evaluation_failures_total.
func NewAbortFailures(reg prometheus.Registerer) (*AbortFailures, error) {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "faultline_abort_evaluation_failures_total",
		Help: "abortWhen evaluations that could not decide (query failed, no samples, bad threshold or for); the policy allows no chaos meanwhile.",
	}, []string{"policy", "reason"})
	if err := reg.Register(v); err != nil {
		return nil, err
	}
	return &AbortFailures{v: v}, nil
}

func (f *AbortFailures) inc(policy, reason string) {
	if f != nil {
		f.v.WithLabelValues(policy, reason).Inc()
	}
}

// pause sets spec.paused, then records why in status.
func (a *AbortWatcher) pause(ctx context.Context, pol *v1alpha1.ChaosPolicy, msg string) error {
	orig := pol.DeepCopy()
	pol.Spec.Paused = true
	if err := a.Client.Patch(ctx, pol, client.MergeFrom(orig)); err != nil {
		return err
	}
	orig = pol.DeepCopy()
	meta.SetStatusCondition(&pol.Status.Conditions, metav1.Condition{
		Type: policy.ConditionAborted, Status: metav1.ConditionTrue, Reason: "ThresholdCrossed", Message: msg,
		ObservedGeneration: pol.Generation,
	})
	return a.Client.Status().Patch(ctx, pol, client.MergeFrom(orig))
}

var errNoSamples = errors.New("returned no samples")

// query returns the first sample of the instant query at now.
func query(ctx context.Context, aw *v1alpha1.AbortCondition, now time.Time) (float64, error) {
	c, err := promapi.NewClient(promapi.Config{Address: aw.PrometheusURL})
	if err != nil {
		return 0, fmt.Errorf("prometheusURL %q: %w", aw.PrometheusURL, err)
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, _, _, err := promv1.NewAPI(c).Query(qctx, aw.Query, now)
	if err != nil {
		return 0, fmt.Errorf("query %q: %w", aw.Query, err)
	}
	switch r := v.(type) {
	case model.Vector:
		if len(r) == 0 {
			return 0, fmt.Errorf("query %q: %w", aw.Query, errNoSamples)
		}
		return float64(r[0].Value), nil
	case *model.Scalar:
		return float64(r.Value), nil
	}
	return 0, fmt.Errorf("query %q returned a %s, want a vector or scalar", aw.Query, v.Type())
}
