package policy

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// ConditionAborted is set on a ChaosPolicy that paused itself.
const ConditionAborted = "Aborted"

// AbortWatcher is the rollback condition: for every ChaosPolicy with
// abortWhen it runs the Prometheus query; when the value stays above the
// threshold for the given duration, it sets the policy's kill switch (which
// the KillSwitch controller carries to the pods) and records a condition with
// the value seen. It runs once per cluster, under leader election.
type AbortWatcher struct {
	Client client.Client
	// Interval between evaluations; default 10s.
	Interval time.Duration

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
		value, err := query(ctx, aw, now)
		if err != nil {
			log.Error(err, "abortWhen query", "policy", pol.Name)
			continue
		}
		threshold, err := strconv.ParseFloat(aw.Threshold, 64)
		if err != nil {
			log.Error(err, "abortWhen threshold", "policy", pol.Name, "threshold", aw.Threshold)
			continue
		}
		if value <= threshold {
			delete(a.breach, pol.Name)
			continue
		}
		since, ok := a.breach[pol.Name]
		if !ok {
			since = now
			a.breach[pol.Name] = now
		}
		var hold time.Duration
		if aw.For != "" {
			hold, _ = v1alpha1.ParseDuration(aw.For)
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

// pause sets spec.paused, then records why in status.
func (a *AbortWatcher) pause(ctx context.Context, pol *v1alpha1.ChaosPolicy, msg string) error {
	orig := pol.DeepCopy()
	pol.Spec.Paused = true
	if err := a.Client.Patch(ctx, pol, client.MergeFrom(orig)); err != nil {
		return err
	}
	orig = pol.DeepCopy()
	meta.SetStatusCondition(&pol.Status.Conditions, metav1.Condition{
		Type: ConditionAborted, Status: metav1.ConditionTrue, Reason: "ThresholdCrossed", Message: msg,
		ObservedGeneration: pol.Generation,
	})
	return a.Client.Status().Patch(ctx, pol, client.MergeFrom(orig))
}

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
			return 0, fmt.Errorf("query %q returned no samples", aw.Query)
		}
		return float64(r[0].Value), nil
	case *model.Scalar:
		return float64(r.Value), nil
	}
	return 0, fmt.Errorf("query %q returned a %s, want a vector or scalar", aw.Query, v.Type())
}
