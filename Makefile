# A thin index over hack/: each target is one script or one go command.
export GOTOOLCHAIN := local

.PHONY: build test run lint e2e bench fuzz manifests helm-lint control-plane

build: ## faultline, faultline-webhook, faultline-agent into bin/
	hack/build.sh

test: ## everything CI runs: lint, unit, golden, fuzz seeds, real kube-apiserver, make-run smoke
	hack/test.sh

run: ## local etcd + kube-apiserver + kube-controller-manager + faultline-webhook, examples applied
	hack/run.sh

lint: ## gofmt + go vet
	hack/lint.sh

e2e: ## end-to-end scenarios against the local control plane
	hack/e2e.sh

bench: ## admission benchmark, injector vs decode/encode baseline
	hack/bench.sh

fuzz: ## each fuzz target for FUZZTIME (default 30s)
	hack/fuzz.sh

manifests: ## CRDs and deepcopy via controller-gen
	hack/manifests.sh

helm-lint: ## helm lint of charts/faultline
	hack/helm-lint.sh

control-plane: ## build (or find cached) etcd, kube-apiserver, kubectl, helm
	hack/build-control-plane.sh
