package workload

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// Problem is one bad value in an object's faultline annotations.
type Problem struct {
	Object *Object
	Err    *field.Error
}

func (p Problem) String() string { return p.Object.ID() + ": " + p.Err.Error() }

// Validate checks faultline's labels and annotations on every pod template
// and returns one problem per bad value.
func Validate(objs []*Object) []Problem {
	var problems []Problem
	for _, o := range All(objs) {
		if o.Template == nil {
			continue
		}
		add := func(e *field.Error) { problems = append(problems, Problem{Object: o, Err: e}) }
		root := field.NewPath(o.AnnotationRoot())
		ann := o.Template.Annotations
		raw, hasFaults := ann[v1alpha1.AnnotationFaults]
		if hasFaults {
			if _, errs := v1alpha1.ParseFaultSpec(raw, root.Key(v1alpha1.AnnotationFaults)); len(errs) > 0 {
				for _, e := range errs {
					add(e)
				}
			}
		}
		if p, ok := ann[v1alpha1.AnnotationProfile]; ok {
			if hasFaults {
				add(field.Forbidden(root.Key(v1alpha1.AnnotationProfile), "set either "+v1alpha1.AnnotationFaults+" or "+v1alpha1.AnnotationProfile+", not both"))
			} else if msgs := validateName(p); msgs != "" {
				add(field.Invalid(root.Key(v1alpha1.AnnotationProfile), p, "want a FaultProfile name: "+msgs))
			}
		}
		if v, ok := ann[v1alpha1.AnnotationPaused]; ok && v != "true" && v != "false" {
			add(field.NotSupported(root.Key(v1alpha1.AnnotationPaused), v, []string{"true", "false"}))
		}
		labelRoot := field.NewPath(strings.Replace(o.AnnotationRoot(), "annotations", "labels", 1))
		if v, ok := o.Template.Labels[v1alpha1.LabelPodInject]; ok && v != "true" && v != "false" {
			add(field.NotSupported(labelRoot.Key(v1alpha1.LabelPodInject), v, []string{"true", "false"}))
		}
	}
	return problems
}
