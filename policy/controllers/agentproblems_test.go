package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

func TestAgentProblemIsReadFromTheInitTerminationMessage(t *testing.T) {
	pod := func(ann map[string]string, name, msg string, last bool) *corev1.Pod {
		st := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Message: msg}}
		s := corev1.ContainerStatus{Name: name, State: st}
		if last {
			s = corev1.ContainerStatus{Name: name, LastTerminationState: st, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: ann}, Status: corev1.PodStatus{InitContainerStatuses: []corev1.ContainerStatus{s}}}
	}
	injected := map[string]string{v1alpha1.AnnotationStatus: "{}"}
	problem := v1alpha1.AgentProblemPrefix + "network: does not resolve"
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"an injected pod whose init reported a problem has it", pod(injected, v1alpha1.InitContainerName, problem, false), "network: does not resolve"},
		{"a problem from an earlier run of init counts too", pod(injected, v1alpha1.InitContainerName, problem, true), "network: does not resolve"},
		{"a clean init has none", pod(injected, v1alpha1.InitContainerName, "", false), ""},
		{"another container's message is not the agent's", pod(injected, "app-init", problem, false), ""},
		{"a pod that was not injected has none (its containers say what they like)", pod(nil, v1alpha1.InitContainerName, problem, false), ""},
		{"a pod already reported is not reported again",
			pod(map[string]string{v1alpha1.AnnotationStatus: "{}", v1alpha1.AnnotationAgentProblem: "reported"}, v1alpha1.InitContainerName, problem, false), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := agentProblem(tc.pod); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
