// Package charts holds the tests of the Helm chart in charts/faultline: lint,
// golden renders, values schema refusals, agreement with the webhook
// configuration built in Go, a server-side dry run of every rendered object
// and a helm install into the local control plane.
package charts
