# A thin index over hack/: each target is one script or one go command.
export GOTOOLCHAIN := local

.PHONY: build images deps test run lint e2e bench fuzz manifests helm-lint control-plane

build: ## faultline, faultline-webhook, faultline-agent into bin/
	hack/build.sh

images: ## agent, webhook and test-app images as OCI tarballs in bin/images (no Docker)
	hack/images.sh

deps: ## install (or check) the Debian packages, the built cluster binaries and the images
	hack/deps.sh

test: ## everything CI runs: lint, unit, golden, fuzz seeds, real kube-apiserver, make-run smoke
	hack/test.sh

run: ## one-node cluster (kubelet, containerd, CNI, kube-proxy, CoreDNS), faultline installed by Helm, examples applied, a fault measured live
	hack/run.sh

lint: ## gofmt + go vet
	hack/lint.sh

e2e: ## end-to-end scenarios on the one-node cluster
	hack/e2e.sh

bench: ## admission benchmark, injector vs decode/encode baseline
	hack/bench.sh

fuzz: ## each fuzz target for FUZZTIME (default 30s)
	hack/fuzz.sh

manifests: ## CRDs and deepcopy via controller-gen
	hack/manifests.sh

helm-lint: ## helm lint of charts/faultline
	hack/helm-lint.sh

control-plane: ## build (or find cached) etcd, kube-apiserver, kubelet, kube-proxy, containerd, CoreDNS, kubectl, helm
	hack/build-control-plane.sh
