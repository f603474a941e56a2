package workload

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Object is one document of the input, kept as JSON so that fields faultline
// does not know survive untouched.
type Object struct {
	JSON      []byte
	Kind      string
	Name      string
	Namespace string
	// Template is the pod template (or the Pod itself); nil for kinds
	// that have none.
	Template *corev1.PodTemplateSpec
	// Prefix is the JSON pointer to Template inside JSON ("" for a Pod).
	Prefix string
	// Labels of the object, used when it is a Namespace.
	Labels map[string]string
	// Items are the objects of a List (what `kubectl get -o yaml` writes).
	Items []*Object
}

// All is objs with the items of every List in their place.
func All(objs []*Object) []*Object {
	var out []*Object
	for _, o := range objs {
		if o.Kind == "List" {
			out = append(out, o.Items...)
			continue
		}
		out = append(out, o)
	}
	return out
}

// ID names the object the way kubectl does in messages.
func (o *Object) ID() string {
	if o.Namespace != "" {
		return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name)
	}
	return fmt.Sprintf("%s %s", o.Kind, o.Name)
}

// Read splits multi-document YAML or JSON into objects. defaultNamespace
// fills in namespaced objects that do not say theirs.
func Read(r io.Reader, defaultNamespace string) ([]*Object, error) {
	dec := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var objs []*Object
	for i := 1; ; i++ {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: not valid YAML: %w", i, err)
		}
		o, err := ParseObject(js, defaultNamespace)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		objs = append(objs, o)
	}
}

// stripComments leaves what is neither a comment nor a document marker:
// empty when the document holds nothing (repeated separators, a comment-only
// header), which kubectl skips and so does Read.
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) && !bytes.Equal(t, []byte("...")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func ParseObject(js []byte, defaultNamespace string) (*Object, error) {
	var head struct {
		Kind     string            `json:"kind"`
		Metadata metav1.ObjectMeta `json:"metadata"`
		Items    []json.RawMessage `json:"items"`
	}
	if err := unmarshal(js, &head); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	if head.Kind == "" {
		return nil, fmt.Errorf("not a Kubernetes object: kind is missing")
	}
	if head.Kind == "List" {
		o := &Object{JSON: js, Kind: "List", Name: "(list)"}
		for i, raw := range head.Items {
			item, err := ParseObject(raw, defaultNamespace)
			if err != nil {
				return nil, fmt.Errorf("List items[%d]: %w", i, err)
			}
			if item.Kind == "List" {
				return nil, fmt.Errorf("List items[%d]: a List inside a List", i)
			}
			o.Items = append(o.Items, item)
		}
		return o, nil
	}
	o := &Object{JSON: js, Kind: head.Kind, Name: head.Metadata.Name, Namespace: head.Metadata.Namespace, Labels: head.Metadata.Labels}
	if o.Name == "" {
		o.Name = head.Metadata.GenerateName + "*"
	}
	if o.Kind != "Namespace" && o.Kind != "ChaosPolicy" && o.Namespace == "" {
		o.Namespace = defaultNamespace
	}
	var err error
	const tmpl = "/spec/template"
	switch o.Kind {
	case "Pod":
		o.Template, err = template(js, func(p *corev1.Pod) *corev1.PodTemplateSpec {
			return &corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec}
		})
	case "Deployment":
		o.Template, err = template(js, func(d *appsv1.Deployment) *corev1.PodTemplateSpec { return &d.Spec.Template })
		o.Prefix = tmpl
	case "StatefulSet":
		o.Template, err = template(js, func(s *appsv1.StatefulSet) *corev1.PodTemplateSpec { return &s.Spec.Template })
		o.Prefix = tmpl
	case "DaemonSet":
		o.Template, err = template(js, func(d *appsv1.DaemonSet) *corev1.PodTemplateSpec { return &d.Spec.Template })
		o.Prefix = tmpl
	case "ReplicaSet":
		o.Template, err = template(js, func(r *appsv1.ReplicaSet) *corev1.PodTemplateSpec { return &r.Spec.Template })
		o.Prefix = tmpl
	case "ReplicationController":
		o.Template, err = template(js, func(r *corev1.ReplicationController) *corev1.PodTemplateSpec {
			if r.Spec.Template == nil {
				return nil
			}
			return r.Spec.Template
		})
		o.Prefix = tmpl
	case "Job":
		o.Template, err = template(js, func(j *batchv1.Job) *corev1.PodTemplateSpec { return &j.Spec.Template })
		o.Prefix = tmpl
	case "CronJob":
		o.Template, err = template(js, func(c *batchv1.CronJob) *corev1.PodTemplateSpec { return &c.Spec.JobTemplate.Spec.Template })
		o.Prefix = "/spec/jobTemplate/spec/template"
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.ID(), err)
	}
	return o, nil
}

// template decodes js as a T and returns its pod template.
func template[T any](js []byte, get func(*T) *corev1.PodTemplateSpec) (*corev1.PodTemplateSpec, error) {
	var obj T
	if err := unmarshal(js, &obj); err != nil {
		return nil, err
	}
	return get(&obj), nil
}

// unmarshal decodes as the API server and kubectl do: field names are
// case-sensitive (encoding/json would read `metAdAtA:` as metadata, and the
// injection would then fail on the original), numbers keep their value.
func unmarshal(js []byte, into any) error {
	return sigsjson.UnmarshalCaseSensitivePreserveInts(js, into)
}

// ReadPolicies reads every ChaosPolicy document from the .yaml, .yml and
// .json files in dir.
func ReadPolicies(dir string) ([]v1alpha1.ChaosPolicy, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("--policies: %w", err)
	}
	var out []v1alpha1.ChaosPolicy
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		objs, err := Read(f, "")
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for _, o := range objs {
			if o.Kind != "ChaosPolicy" {
				continue
			}
			var p v1alpha1.ChaosPolicy
			if err := json.Unmarshal(o.JSON, &p); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", path, o.ID(), err)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// AnnotationRoot is the field path prefix of the template's annotations,
// so messages point into the manifest as written.
func (o *Object) AnnotationRoot() string {
	switch o.Prefix {
	case "":
		return "metadata.annotations"
	case "/spec/template":
		return "spec.template.metadata.annotations"
	default:
		return "spec.jobTemplate.spec.template.metadata.annotations"
	}
}
