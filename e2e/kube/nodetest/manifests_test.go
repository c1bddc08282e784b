package nodetest

// Marker is how a pod's processes are found on the host after `down`: every
// long-running test container sleeps exactly this long.
const sleepMarker = "86399"

// mountRoot is where the test pods mount their volumes, so the check after
// `down` knows which host paths the agent had to create (and must remove).
const mountRoot = "/strom-nodetest"

const envPod = `apiVersion: v1
kind: Namespace
metadata: {name: nt}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: nt}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: nt}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata:
  name: env
  namespace: nt
  labels: {app: env}
spec:
  terminationGracePeriodSeconds: 5
  securityContext: {runAsUser: 1000, runAsGroup: 1000}
  initContainers:
  - name: prepare
    image: busybox
    command: [sh, -c, "echo from-init > /strom-nodetest/scratch/init.txt"]
    volumeMounts: [{name: scratch, mountPath: /strom-nodetest/scratch}]
  containers:
  - name: main
    image: busybox:1.36
    workingDir: /strom-nodetest/scratch
    command:
    - sh
    - -c
    - |
      echo "name=$POD_NAME"; echo "ns=$POD_NS"; echo "ip=$POD_IP"; echo "node=$NODE_NAME"; echo "hostip=$HOST_IP"
      echo "greeting=$GREETING"; echo "password=$PASSWORD"; echo "expanded=$(GREETING)-arg"; echo "chained=$CHAINED"
      echo "fromenv=$CFG_greeting"
      echo "uid=$(id -u)"; echo "gid=$(id -g)"; echo "pwd=$(pwd)"; echo "hostname=$(hostname)"
      echo "cm=$(cat /strom-nodetest/cfg/greeting)"; echo "secret=$(cat /strom-nodetest/creds/password)"
      echo "labels=$(cat /strom-nodetest/podinfo/labels)"; echo "init=$(cat init.txt)"; echo "host=$(cat /strom-nodetest/host/marker)"
      echo "sans=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)"
      grep -q "BEGIN CERTIFICATE" /var/run/secrets/kubernetes.io/serviceaccount/ca.crt && echo "ca=yes"
      echo "token=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token)"
      echo written > /strom-nodetest/scratch/f && echo "scratch=$(cat /strom-nodetest/scratch/f)"
      echo "search=$(grep ^search /etc/resolv.conf)"; echo "nameserver=$(grep ^nameserver /etc/resolv.conf)"
      grep -q "^$POD_IP[[:space:]]env$" /etc/hosts && echo "hosts=yes"
      echo "eth0=$(cat /sys/class/net/eth0/operstate 2>/dev/null || echo missing)"
      echo "k8s=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"
      echo done
      exec sleep 86399
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: CHAINED, value: "$(POD_NAME)-in-$(POD_NS)"}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: cfg}}
    readinessProbe:
      exec: {command: [test, -f, /strom-nodetest/scratch/f]}
      periodSeconds: 1
    volumeMounts:
    - {name: cfg, mountPath: /strom-nodetest/cfg}
    - {name: creds, mountPath: /strom-nodetest/creds}
    - {name: podinfo, mountPath: /strom-nodetest/podinfo}
    - {name: scratch, mountPath: /strom-nodetest/scratch}
    - {name: host, mountPath: /strom-nodetest/host, readOnly: true}
  volumes:
  - {name: host, hostPath: {path: HOSTDIR, type: Directory}}
  - {name: cfg, configMap: {name: cfg}}
  - {name: creds, secret: {secretName: creds}}
  - name: podinfo
    downwardAPI:
      items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
  - {name: scratch, emptyDir: {}}
`

// renewPod prints what it sees in its Secret volume every second: the
// certificate, a key the renewal drops, and the certificate mounted with
// subPath, which (as on a kubelet) keeps the content it started with. It
// runs as uid 1000 and reads the 0440 files through its fsGroup.
const renewPod = `apiVersion: v1
kind: Namespace
metadata: {name: nt}
---
apiVersion: v1
kind: Secret
metadata: {name: renew, namespace: nt}
stringData: {tls.crt: crt-1, extra.pem: extra-1}
---
apiVersion: v1
kind: Pod
metadata: {name: renew, namespace: nt}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: 1000, runAsGroup: 1000, fsGroup: 2000}
  containers:
  - name: main
    image: busybox
    command:
    - sh
    - -c
    - |
      echo "layout=$(ls -A /strom-nodetest/renew | grep -c '^\.\.data$')"
      while true; do
        echo "seen=$(cat /strom-nodetest/renew/tls.crt)/$(cat /strom-nodetest/renew/extra.pem 2>/dev/null || echo none)/$(cat /strom-nodetest/pinned.crt)"
        sleep 1
      done
    volumeMounts:
    - {name: renew, mountPath: /strom-nodetest/renew}
    - {name: renew, mountPath: /strom-nodetest/pinned.crt, subPath: tls.crt}
  volumes:
  - {name: renew, secret: {secretName: renew, defaultMode: 0440}}
`

const pingPods = `apiVersion: v1
kind: Pod
metadata: {name: server, namespace: nt, labels: {app: server}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: http
    image: python:3
    command: [sh, -c, 'echo "pong from $(hostname)" > /strom-nodetest/srv/ping.txt && cd /strom-nodetest/srv && exec python3 -m http.server 8080']
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /ping.txt, port: http}
      periodSeconds: 1
    volumeMounts: [{name: srv, mountPath: /strom-nodetest/srv}]
  volumes: [{name: srv, emptyDir: {}}]
`

const clientPod = `apiVersion: v1
kind: Pod
metadata: {name: client, namespace: nt}
spec:
  restartPolicy: Never
  containers:
  - name: curl
    image: busybox
    command: [curl, -sS, --max-time, "5", "http://$(SERVER_IP):8080/ping.txt"]
    env: [{name: SERVER_IP, value: "SERVER"}]
`

const statefulSet = `apiVersion: v1
kind: ConfigMap
metadata: {name: app-cfg, namespace: nt}
data: {mode: stateful}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: nt}
spec:
  clusterIP: None
  selector: {app: db}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: nt}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 2
      # Not root: the claim is writable through fsGroup, as the brokers' is.
      securityContext: {runAsUser: 1000, runAsGroup: 1000, fsGroup: 2000, runAsNonRoot: true}
      containers:
      - name: db
        image: busybox
        command:
        - sh
        - -c
        - |
          test -f /strom-nodetest/data/stamp || cat /proc/sys/kernel/random/uuid > /strom-nodetest/data/stamp
          echo "stamp=$(cat /strom-nodetest/data/stamp)"; echo "mode=$(cat /strom-nodetest/app/mode)"
          exec sleep 86399
        readinessProbe:
          exec: {command: [test, -f, /strom-nodetest/data/stamp]}
          periodSeconds: 1
        volumeMounts:
        - {name: data, mountPath: /strom-nodetest/data}
        - {name: app, mountPath: /strom-nodetest/app}
      volumes: [{name: app, configMap: {name: app-cfg}}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 10Mi}}
`

const livenessPod = `apiVersion: v1
kind: Pod
metadata: {name: live, namespace: nt}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: [sleep, "86399"]
    livenessProbe:
      exec: {command: [sh, -c, "exit 3"]}
      periodSeconds: 1
      failureThreshold: 2
`

const ghostPod = `apiVersion: v1
kind: Pod
metadata: {name: ghost, namespace: nt}
spec:
  containers:
  - {name: main, image: "registry.invalid/ghost:1.0"}
`

const stubbornPod = `apiVersion: v1
kind: Pod
metadata: {name: stubborn, namespace: nt}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: main
    image: busybox
    # Ignores SIGTERM: only the SIGKILL after the grace period ends it.
    command: [sh, -c, 'trap "echo TERM ignored" TERM; while true; do sleep 1; done']
`

const slowStartPod = `apiVersion: v1
kind: Pod
metadata: {name: slow, namespace: nt}
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "sleep 4; touch /strom-nodetest/s/up; exec sleep 86399"]
    startupProbe:
      exec: {command: [test, -f, /strom-nodetest/s/up]}
      periodSeconds: 1
      failureThreshold: 30
    volumeMounts: [{name: s, mountPath: /strom-nodetest/s}]
  volumes: [{name: s, emptyDir: {}}]
`

const serverService = `apiVersion: v1
kind: Service
metadata: {name: server, namespace: nt}
spec:
  selector: {app: server}
  ports: [{port: 80, targetPort: http}]
`

// svcClient reaches the server through its Service (the service-link
// variables name its ClusterIP) and the API server through the
// ` + "`kubernetes`" + ` Service with the pod's token.
const svcClient = `apiVersion: v1
kind: Pod
metadata: {name: svc-client, namespace: nt}
spec:
  restartPolicy: Never
  containers:
  - name: curl
    image: busybox
    command:
    - sh
    - -c
    - |
      echo "svc=$(curl -sS --max-time 5 http://$SERVER_SERVICE_HOST:$SERVER_SERVICE_PORT/ping.txt)"
      echo "dns=$(getent hosts server.nt.svc.cluster.local)"
      echo "byname=$(curl -sS --max-time 5 http://server/ping.txt)"
      SA=/var/run/secrets/kubernetes.io/serviceaccount
      echo "api=$(curl -sS --max-time 5 --cacert $SA/ca.crt -H "Authorization: Bearer $(cat $SA/token)" https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/nt/secrets | tr -d '\n')"
`

// resolverPod waits for the name to resolve to WANT: the record follows
// the new pod's EndpointSlice into CoreDNS a moment after the pod is Ready,
// as on any cluster. It prints the last answer either way.
const resolverPod = `apiVersion: v1
kind: Pod
metadata: {name: resolver, namespace: nt}
spec:
  restartPolicy: Never
  containers:
  - name: getent
    image: busybox
    env: [{name: WANT, value: "WANT"}]
    command:
    - sh
    - -c
    - |
      for i in $(seq 60); do
        got="$(getent hosts db-0.db.nt.svc.cluster.local)"
        case "$got" in "$WANT "*) echo "$got"; exit 0;; esac
        sleep 1
      done
      echo "$got"; exit 1
`
