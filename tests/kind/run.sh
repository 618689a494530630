#!/usr/bin/env bash
# For users with Docker: the e2e path on a real cluster. Builds the image, creates a kind
# cluster, loads the image, installs with kustomize, starts the backend emulator in the
# cluster, applies the samples and waits until they are Ready, then deletes the cluster.
# Needs docker, kind and kubectl on PATH. Usage: tests/kind/run.sh [cluster-name]
set -euo pipefail

cluster="${1:-oauth-operator-e2e}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
image="oauth-operator:0.1.0"
emulator_image="oauth-backend-emulator:0.1.0"

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is needed" >&2; exit 1; }
done

cleanup() { kind delete cluster --name "$cluster" >/dev/null 2>&1 || true; }
trap cleanup EXIT

docker build -t "$image" "$root"
# The emulator image: the same build, another binary.
docker build -t "$emulator_image" -f - "$root" <<'DOCKERFILE'
FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev gcc
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin oauth-backend-emulator && cp target/release/oauth-backend-emulator /emulator
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /emulator /emulator
ENTRYPOINT ["/emulator"]
DOCKERFILE

kind create cluster --name "$cluster" --wait 120s
kind load docker-image "$image" "$emulator_image" --name "$cluster"

kubectl apply -k "$root/deploy/"
kubectl -n oauth-operator-system create secret generic oauth-operator-keys --from-literal=default=kind-key
kubectl -n oauth-operator-system apply -f - <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: emulator}
spec:
  selector: {matchLabels: {app: emulator}}
  template:
    metadata: {labels: {app: emulator}}
    spec:
      containers:
        - name: emulator
          image: oauth-backend-emulator:0.1.0
          args: [--listen, 0.0.0.0:8080, --api-key, kind-key]
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: emulator}
spec:
  selector: {app: emulator}
  ports: [{port: 8080}]
YAML
# Point the default backend at the emulator.
kubectl -n oauth-operator-system create configmap oauth-operator-config --dry-run=client -o yaml \
  --from-literal=config.yaml="$(printf 'backends:\n  default:\n    type: wacht\n    baseUrl: http://emulator.oauth-operator-system:8080\n    deploymentId: dep_kind\n    insecureHttp: true\n    apiKeyFile: /etc/oauth-operator/keys/default\n')" \
  | kubectl apply -f -
kubectl -n oauth-operator-system rollout restart deployment/oauth-operator
kubectl -n oauth-operator-system rollout status deployment/oauth-operator --timeout=180s
kubectl -n oauth-operator-system rollout status deployment/emulator --timeout=180s

kubectl apply -f "$root/deploy/samples/"
kubectl wait --for=condition=Ready oauthapp/mcp-auth oauthclient/web --timeout=120s
kubectl get oauth -o wide
kubectl get secret web-oauth -o jsonpath='{.data.client_id}' | base64 -d >/dev/null
echo "kind e2e: the samples are Ready and the credentials Secret exists"
