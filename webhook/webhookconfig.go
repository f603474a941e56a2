package webhook

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/faultline-dev/faultline/policy"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// ConfigurationName is the MutatingWebhookConfiguration's name.
const ConfigurationName = "faultline-injector"

// MutatingWebhookConfiguration is the registration the injector needs. The
// chart renders the same settings; `make run` and the tests apply this one.
//
// Safety is in the selectors and the failure policy: pods that did not opt in
// never reach the webhook; kube-system and faultline's own namespace are
// excluded by name; failurePolicy Ignore means a dead webhook never stops a
// pod from being created.
func MutatingWebhookConfiguration(client admissionregistrationv1.WebhookClientConfig, ownNamespace string) *admissionregistrationv1.MutatingWebhookConfiguration {
	excluded := append([]string{}, policy.ProtectedNamespaces...)
	if ownNamespace != "" {
		excluded = append(excluded, ownNamespace)
	}
	entry := func(name, nsValue string, podSelector metav1.LabelSelectorRequirement) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name:         name,
			ClientConfig: client,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
					Scope: ptr.To(admissionregistrationv1.NamespacedScope),
				},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: v1alpha1.LabelNamespaceInjection, Operator: metav1.LabelSelectorOpIn, Values: []string{nsValue}},
				{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: excluded},
			}},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{podSelector}},
			FailurePolicy:  ptr.To(admissionregistrationv1.Ignore),
			MatchPolicy:    ptr.To(admissionregistrationv1.Equivalent),
			// Blast-radius Leases are written on admission, never on a dry run.
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNoneOnDryRun),
			TimeoutSeconds:          ptr.To[int32](5),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
		}
	}
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName, Labels: map[string]string{"app.kubernetes.io/name": "faultline"}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			// Opt-in namespaces: only pods labelled faultline.dev/inject=true.
			entry("pods.inject.faultline.dev", v1alpha1.NamespaceInjectionOn,
				metav1.LabelSelectorRequirement{Key: v1alpha1.LabelPodInject, Operator: metav1.LabelSelectorOpIn, Values: []string{"true"}}),
			// Always-on namespaces: every pod unless it opts out.
			entry("pods.always.faultline.dev", v1alpha1.NamespaceInjectionAll,
				metav1.LabelSelectorRequirement{Key: v1alpha1.LabelPodInject, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"false"}}),
		},
	}
}

// ValidatingConfigurationName is the ValidatingWebhookConfiguration's name.
const ValidatingConfigurationName = "faultline-validator"

// ValidatingWebhookConfiguration checks faultline's annotations on workload
// templates in namespaces that take part in chaos. It fails open like the
// injector: a dead webhook never blocks a deploy.
func ValidatingWebhookConfiguration(client admissionregistrationv1.WebhookClientConfig, ownNamespace string) *admissionregistrationv1.ValidatingWebhookConfiguration {
	excluded := append([]string{}, policy.ProtectedNamespaces...)
	if ownNamespace != "" {
		excluded = append(excluded, ownNamespace)
	}
	rule := func(group string, resources ...string) admissionregistrationv1.RuleWithOperations {
		return admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule: admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{"v1"}, Resources: resources,
				Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
		}
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: ValidatingConfigurationName, Labels: map[string]string{"app.kubernetes.io/name": "faultline"}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         "workloads.validate.faultline.dev",
			ClientConfig: client,
			Rules: []admissionregistrationv1.RuleWithOperations{
				rule("apps", "deployments", "statefulsets", "daemonsets", "replicasets"),
				rule("batch", "jobs", "cronjobs"),
			},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: v1alpha1.LabelNamespaceInjection, Operator: metav1.LabelSelectorOpIn, Values: []string{v1alpha1.NamespaceInjectionOn, v1alpha1.NamespaceInjectionAll}},
				{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: excluded},
			}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](5),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}
