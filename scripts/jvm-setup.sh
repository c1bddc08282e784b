#!/usr/bin/env bash
# Installs the JVM side of the tests (e2e/jvm): Apache Kafka 4.4.0's jars (broker, tools,
# Java client, Kafka Streams), the Java 4.0.x client and the compiled Java test programs,
# all under <target>/jvm. Idempotent: Maven's ~/.m2 cache means a second run downloads
# nothing, and when neither the POM nor a source changed, Maven is not run at all.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JVM_DIR="${STROM_JVM_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/jvm}"
SRC="$ROOT/e2e/jvm"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n env DEBIAN_FRONTEND=noninteractive "$@"; fi
}
if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    echo "java or mvn missing; installing from Debian"
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends openjdk-17-jdk-headless maven
fi

digest="$({ cat "$SRC/pom.xml"; find "$SRC/src" -type f | sort | xargs cat; java -version 2>&1; } |
    sha256sum | cut -c1-16)"
stamp="$JVM_DIR/.strom-jvm-$digest"
if [ -f "$stamp" ] && [ -f "$JVM_DIR/strom-jvm-tests.jar" ]; then
    echo "jvm jars up to date ($JVM_DIR)"
else
    echo "mvn package (e2e/jvm) into $JVM_DIR"
    rm -f "$JVM_DIR"/.strom-jvm-*
    # A jar dropped from the POM must not linger on the classpath.
    rm -rf "$JVM_DIR/lib" "$JVM_DIR/clients-4.0"
    mvn -q -B -Dstyle.color=never -f "$SRC/pom.xml" -Dstrom.jvm.dir="$JVM_DIR" package
    touch "$stamp"
fi
echo "  $(java -version 2>&1 | head -1), $(ls "$JVM_DIR/lib" | wc -l) jars: $(cd "$JVM_DIR/lib" && ls kafka_2.13-*.jar kafka-clients-*.jar kafka-streams-*.jar | tr '\n' ' ')"
