package kubeinject

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
	"github.com/faultline-dev/faultline/webhook"
	"github.com/faultline-dev/faultline/webhook/workload"
)

// Options control an offline injection.
type Options struct {
	Config webhook.Config
	// AllowAll previews as if a policy allowed every requested fault;
	// without it (and without policies) nothing is injected, as with no
	// ChaosPolicy in a cluster.
	AllowAll     bool
	OwnNamespace string
	// Policies are ChaosPolicies to decide with (from --policies), on top
	// of any ChaosPolicy documents in the input itself.
	Policies []v1alpha1.ChaosPolicy
	// Now is the clock for policy windows; nil means time.Now.
	Now func() time.Time
}

// Outcome is what happened to one object.
type Outcome struct {
	Object   *workload.Object
	Injected bool
	Decision policy.Decision
	Warnings []string
}

// Inject writes every object to out, injected where the decision allows,
// and returns one outcome per object with a pod template.
func Inject(ctx context.Context, objs []*workload.Object, opts Options, out io.Writer) ([]Outcome, error) {
	policies := append([]v1alpha1.ChaosPolicy{}, opts.Policies...)
	all := workload.All(objs)
	for _, o := range all {
		if o.Kind == "ChaosPolicy" {
			var p v1alpha1.ChaosPolicy
			if err := json.Unmarshal(o.JSON, &p); err != nil {
				return nil, fmt.Errorf("%s: %w", o.ID(), err)
			}
			policies = append(policies, p)
		}
	}
	var limiter policy.Limiter = policy.NoPolicy{Why: "no ChaosPolicy given (--policies DIR or ChaosPolicy documents in the input); pass --allow-all to preview as if one allowed everything"}
	switch {
	case opts.AllowAll:
		limiter = policy.AdmitRequested{Why: "--allow-all: previewing as if a policy allowed every requested fault"}
	case len(policies) > 0:
		limiter = &policy.Policies{Source: policy.StaticPolicies(policies), Now: opts.Now}
	}
	profiles := inputProfiles{}
	for _, o := range all {
		if o.Kind == "FaultProfile" {
			var p v1alpha1.FaultProfile
			if err := json.Unmarshal(o.JSON, &p); err != nil {
				return nil, fmt.Errorf("%s: %w", o.ID(), err)
			}
			profiles[o.Namespace+"/"+p.Name] = p
		}
	}
	engine := &policy.Engine{Safety: policy.Safety{OwnNamespace: opts.OwnNamespace}, Limiter: limiter, Profiles: profiles}
	namespaces := map[string]map[string]string{}
	for _, o := range all {
		if o.Kind == "Namespace" {
			namespaces[o.Name] = o.Labels
		}
	}
	injector := webhook.NewInjector(opts.Config)
	var outcomes []Outcome
	// inject returns o's JSON, injected where the decision allows.
	inject := func(o *workload.Object) ([]byte, error) {
		if o.Template == nil {
			return o.JSON, nil
		}
		oc, patched, err := injectOne(ctx, engine, injector, o, namespaces)
		if err != nil {
			return nil, err
		}
		outcomes = append(outcomes, oc)
		return patched, nil
	}
	for i, o := range objs {
		js, err := inject(o)
		if err != nil {
			return outcomes, err
		}
		if o.Kind == "List" {
			// The List stays a List, its items injected in place.
			items := make([]json.RawMessage, len(o.Items))
			for j, item := range o.Items {
				if items[j], err = inject(item); err != nil {
					return outcomes, err
				}
			}
			if js, err = withItems(o.JSON, items); err != nil {
				return outcomes, fmt.Errorf("%s: %w", o.ID(), err)
			}
		}
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			return outcomes, fmt.Errorf("%s: rendering: %w", o.ID(), err)
		}
		if i > 0 {
			fmt.Fprintln(out, "---")
		}
		if _, err := out.Write(y); err != nil {
			return outcomes, err
		}
	}
	return outcomes, nil
}

func injectOne(ctx context.Context, engine *policy.Engine, injector *webhook.Injector, o *workload.Object, namespaces map[string]map[string]string) (Outcome, []byte, error) {
	tmpl := o.Template
	pod := &corev1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}
	pod.Namespace = o.Namespace
	known, ok := namespaces[o.Namespace]
	// The API server labels every namespace with its name; policies select
	// on it, so the offline view does too.
	labels := map[string]string{"kubernetes.io/metadata.name": o.Namespace}
	for k, v := range known {
		labels[k] = v
	}
	d := engine.Decide(ctx, &policy.Request{Pod: pod, NamespaceLabels: labels, NamespaceKnown: ok})
	oc := Outcome{Object: o, Decision: d}
	if !d.Inject {
		return oc, o.JSON, nil
	}
	p, conflict := injector.BuildPatch(&tmpl.ObjectMeta, &tmpl.Spec, o.Prefix, d.Spec, webhook.Clock{VDSO: d.ClockVDSO, Method: d.ClockMethod})
	if conflict != nil {
		oc.Decision.Inject = false
		oc.Decision.Reasons = append(oc.Decision.Reasons, *conflict)
		return oc, o.JSON, nil
	}
	ops, err := p.JSON()
	if err != nil {
		return oc, nil, fmt.Errorf("%s: encoding patch: %w", o.ID(), err)
	}
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		return oc, nil, fmt.Errorf("%s: decoding patch: %w", o.ID(), err)
	}
	// A template may lack metadata entirely; the patch adds under it.
	js, err := ensureMetadata(o.JSON, o.Prefix)
	if err != nil {
		return oc, nil, fmt.Errorf("%s: %w", o.ID(), err)
	}
	patched, err := patch.Apply(js)
	if err != nil {
		return oc, nil, fmt.Errorf("%s: applying patch: %w", o.ID(), err)
	}
	oc.Injected = true
	oc.Warnings = p.Warnings
	return oc, patched, nil
}

// withItems is the List js with its items replaced, every other field as it was.
func withItems(js []byte, items []json.RawMessage) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(js, &doc); err != nil {
		return nil, err
	}
	b, err := json.Marshal(items)
	if err != nil {
		return nil, err
	}
	doc["items"] = b
	return json.Marshal(doc)
}

// ensureMetadata adds an empty metadata object at prefix when it is missing,
// which the API server would default but a manifest need not spell out.
// Numbers keep their digits (decoded as json.Number, not float64:
// 9007199254740993 must not become ...992).
func ensureMetadata(js []byte, prefix string) ([]byte, error) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	cur := doc
	for _, seg := range strings.Split(strings.TrimPrefix(prefix, "/"), "/") {
		if seg == "" {
			continue
		}
		next, ok := cur[seg].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[seg] = next
		}
		cur = next
	}
	if _, ok := cur["metadata"].(map[string]any); ok {
		return js, nil
	}
	cur["metadata"] = map[string]any{}
	return json.Marshal(doc)
}

// inputProfiles are the FaultProfile documents of the input, by namespace/name.
type inputProfiles map[string]v1alpha1.FaultProfile

func (p inputProfiles) FaultProfile(_ context.Context, ns, name string) (*v1alpha1.FaultProfile, error) {
	if fp, ok := p[ns+"/"+name]; ok {
		return &fp, nil
	}
	return nil, nil
}
