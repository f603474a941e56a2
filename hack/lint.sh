#!/usr/bin/env bash
# gofmt and go vet; fails listing unformatted files.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
unformatted="$(gofmt -l $(git ls-files '*.go'))"
if [[ -n "$unformatted" ]]; then
  echo "gofmt needed on:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go vet -tags e2e ./e2e/ # the scenarios are behind a build tag
echo "lint ok"
