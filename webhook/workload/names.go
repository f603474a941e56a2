package workload

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

func validateName(s string) string {
	return strings.Join(validation.IsDNS1123Subdomain(s), "; ")
}
