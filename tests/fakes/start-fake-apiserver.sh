#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Start the fake API server for a demo or a manual test: makes a throwaway PKI in DIR,
# starts tests/fakes/fake-apiserver.py in the background, writes DIR/kubeconfig (node
# credentials for NODE, as the kubelet's kubelet.conf would be) and prints how to use it.
#
#   tests/fakes/start-fake-apiserver.sh /tmp/api node1
#   hami-dra-plugin --kubeconfig=/tmp/api/kubeconfig --node-name=node1 ...
#   curl -s http://127.0.0.1:$(cat /tmp/api/control-port)/slices     # the stored slices
#   kill $(cat /tmp/api/fake.pid)
set -eu
dir=$1
node=${2:-node1}
here=$(dirname "$0")
mkdir -p "$dir"
sh "$here/make-certs.sh" "$dir" "$node"
rm -f "$dir/fake-state.json"
/usr/bin/python3 "$here/fake-apiserver.py" --certs "$dir" --state-file "$dir/fake-state.json" \
        --node "$node" ${FAKE_K8S:+--k8s "$FAKE_K8S"} >"$dir/fake.log" 2>&1 &
echo $! >"$dir/fake.pid"
i=0
while [ ! -s "$dir/fake-state.json" ]; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "fake API server did not start, see $dir/fake.log" >&2; exit 1; }
        sleep 0.1
done
port=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$dir/fake-state.json")
/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["control"])' "$dir/fake-state.json" >"$dir/control-port"
cat >"$dir/kubeconfig" <<EOT
apiVersion: v1
kind: Config
current-context: default
contexts:
- name: default
  context: {cluster: fake, user: node}
clusters:
- name: fake
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority: ca.crt
users:
- name: node
  user:
    client-certificate: client.crt
    client-key: client.key
EOT
echo "fake API server on https://127.0.0.1:$port (control: http://127.0.0.1:$(cat "$dir/control-port"))"
echo "kubeconfig: $dir/kubeconfig"
