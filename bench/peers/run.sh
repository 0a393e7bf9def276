#!/usr/bin/env bash
# make bench-peers: beacongate side by side with nginx + lua-resty-kafka
# (its best peer measured so far) and a do-nothing server, on this
# machine. docs/performance.md says what it runs and how to read it.
#
# For RUNS rounds, server by server within each round (do-nothing, nginx,
# beacongate): a fresh development broker, the server, `wrk` with ~800 B
# pixel GETs for DURATION, a bounded wait until the records are in Kafka,
# then the records counted back from the topic, the server's CPU time
# (all its processes and threads, from /proc) and its peak RSS.
#
# Settings (environment): RUNS (3), DURATION (15s), CONNS (64),
# THREADS (2), PARTITIONS (16), DELIVERY_TIMEOUT in seconds (60),
# SERVERS ("do-nothing nginx beacongate"), NGINX_WORKERS (number of
# cores), NGINX_FLUSH_MS (1000), NGINX_BATCH_NUM (200),
# NGINX_MAX_BUFFERING (50000): lua-resty-kafka's defaults;
# BROKER_MODE (-serve-broker-upconvert; -serve-broker is kfake as is,
# which refuses lua-resty-kafka's records: see bench/messageset.go).
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PARTITIONS=${PARTITIONS:-16}
DELIVERY_TIMEOUT=${DELIVERY_TIMEOUT:-60}
SERVERS=${SERVERS:-do-nothing nginx beacongate}
NGINX_WORKERS=${NGINX_WORKERS:-$(nproc)}
NGINX_FLUSH_MS=${NGINX_FLUSH_MS:-1000}
NGINX_BATCH_NUM=${NGINX_BATCH_NUM:-200}
NGINX_MAX_BUFFERING=${NGINX_MAX_BUFFERING:-50000}
BROKER_MODE=${BROKER_MODE:--serve-broker-upconvert}
TOPIC=beacons
GATEWAY=bin/beacongate
HARNESS=bin/beacongate-bench
LUA_MODULE=/usr/lib/nginx/modules/ngx_http_lua_module.so
KAFKA_LUA=/usr/share/lua/5.1/nginx/kafka/producer.lua
APT_PACKAGES=(nginx-light libnginx-mod-http-lua lua-nginx-kafka wrk kcat)
CLK_TCK=$(getconf CLK_TCK)

die() {
	echo "bench-peers: $*" >&2
	exit 1
}

# What the comparison needs: Debian's packages. Installed here when
# missing and this runs as root (as in CI containers); otherwise the one
# apt command is printed.
missing=()
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
[[ -f $LUA_MODULE ]] || missing+=(libnginx-mod-http-lua)
[[ -f $KAFKA_LUA ]] || missing+=(lua-nginx-kafka)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		die "missing ${missing[*]}; install them with: sudo apt-get install -y ${APT_PACKAGES[*]}"
	fi
	echo "bench-peers: installing ${missing[*]} with apt-get (Debian packages)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
fi
[[ -x $GATEWAY && -x $HARNESS ]] || die "$GATEWAY or $HARNESS missing: run make build first"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS=$RUNS: want a positive number"
[[ $DELIVERY_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "DELIVERY_TIMEOUT=$DELIVERY_TIMEOUT: want seconds"

mkdir -p bench-out
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report=bench-out/peers-$stamp.txt
exec > >(tee "$report") 2>&1

work=$(mktemp -d /tmp/beacongate-peers-XXXXXX)
results=$work/results.tsv
: >"$results"
# On an early exit: stop what this script started and still runs (its
# jobs; nginx's workers with their master), never a pid that may have
# been reused since.
cleanup() {
	local p q kids=()
	for p in $(jobs -p); do
		kids+=("$p")
		for q in /proc/[0-9]*; do
			[[ $(awk '/^PPid:/{print $2}' "$q/status" 2>/dev/null) == "$p" ]] && kids+=("${q#/proc/}")
		done
	done
	if ((${#kids[@]})); then
		kill -TERM "${kids[@]}" 2>/dev/null || true
		sleep 1
		kill -KILL "${kids[@]}" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM

# ---- processes -------------------------------------------------------------

# wait_listening FILE PID: the address from a child mode's first line
# "listening HOST:PORT" (bench/spawn.go), up to 30 s.
wait_listening() {
	local i addr
	for ((i = 0; i < 300; i++)); do
		addr=$(awk '/^listening /{print $2; exit}' "$1" 2>/dev/null || true)
		if [[ -n $addr ]]; then
			echo "$addr"
			return 0
		fi
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	die "$1: no 'listening' line: $(tail -c 2000 "$1")"
}

# free_port: a loopback port nobody listens on at the moment.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# wait_ready URL PID LOG: until URL answers 200 (up to 60 s) while PID
# lives; 1 when it exited first (its log is shown).
wait_ready() {
	local i
	for ((i = 0; i < 600; i++)); do
		if [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" || true) == 200 ]]; then
			return 0
		fi
		if ! kill -0 "$2" 2>/dev/null; then
			wait "$2" 2>/dev/null || true
			echo "  (server pid $2 exited before $1 answered: $(tail -c 600 "$3" 2>/dev/null | tr '\n' ' '))"
			return 1
		fi
		sleep 0.1
	done
	die "$1 did not answer 200 within 60 s: $(tail -c 2000 "$3")"
}

# stop_pid PID SIGNAL: signal it and wait up to 60 s for the exit.
stop_pid() {
	local i
	kill "-$2" "$1" 2>/dev/null || return 0
	for ((i = 0; i < 600; i++)); do
		kill -0 "$1" 2>/dev/null || {
			wait "$1" 2>/dev/null || true
			return 0
		}
		sleep 0.1
	done
	echo "  (pid $1 still running 60 s after SIG$2: killed)"
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# server_pids: the measured server's processes (nginx: master and workers).
server_pids() {
	local p
	echo "$server_pid"
	if [[ $server == nginx ]]; then
		for p in /proc/[0-9]*; do
			[[ $(awk '/^PPid:/{print $2}' "$p/status" 2>/dev/null) == "$server_pid" ]] && echo "${p#/proc/}"
		done
	fi
	return 0
}

# cpu_ticks: utime+stime of the server's processes, all threads.
cpu_ticks() {
	local p sum=0 t
	for p in $(server_pids); do
		t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
		sum=$((sum + ${t:-0}))
	done
	echo "$sum"
}

# peak_rss_kib: VmHWM summed over the server's processes.
peak_rss_kib() {
	local p sum=0 t
	for p in $(server_pids); do
		t=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status" 2>/dev/null)
		sum=$((sum + ${t:-0}))
	done
	echo "$sum"
}

# end_offsets: the sum of the topic's partitions' end offsets (records
# appended), cheap enough to poll.
end_offsets() {
	local args=() p
	for ((p = 0; p < PARTITIONS; p++)); do
		args+=(-t "$TOPIC:$p:-1")
	done
	kcat -Q -b "$broker" "${args[@]}" 2>/dev/null | awk '/offset/{s += $NF} END {print s + 0}'
}

# count_records: "COUNT MEAN_VALUE_BYTES" of every record of the topic,
# read back from the beginning.
count_records() {
	kcat -C -b "$broker" -t "$TOPIC" -o beginning -e -q -f '%S\n' | awk '{n++; s += $1} END {printf "%d %.0f\n", n, n ? s / n : 0}'
}

# ---- one server ------------------------------------------------------------

# measure RUN SERVER: appends a line to $results and prints its notes.
measure() {
	local run=$1 dir
	server=$2
	dir=$work/$run-$server
	mkdir -p "$dir"

	"$HARNESS" "$BROKER_MODE" 127.0.0.1:0 "$dir/kafka" "$PARTITIONS" "$TOPIC" >"$dir/broker.log" 2>&1 &
	local broker_pid=$!
	broker=$(wait_listening "$dir/broker.log" "$broker_pid")

	local addr ready errlog admin='' attempt
	for attempt in 1 2 3; do
		case $server in
		do-nothing)
			"$HARNESS" -serve-baseline 127.0.0.1:0 >"$dir/server.log" 2>&1 &
			server_pid=$!
			addr=$(wait_listening "$dir/server.log" "$server_pid")
			ready=http://$addr/readyz
			errlog=$dir/server.log
			;;
		nginx)
			addr=127.0.0.1:$(free_port)
			local user=
			[[ $(id -u) -eq 0 ]] && user="user $(id -un) $(id -gn);"
			sed -e "s|@USER@|$user|" -e "s|@WORKERS@|$NGINX_WORKERS|" -e "s|@DIR@|$dir|g" \
				-e "s|@KAFKA_HOST@|${broker%:*}|" -e "s|@KAFKA_PORT@|${broker##*:}|" -e "s|@ADDR@|$addr|" \
				-e "s|@TOPIC@|$TOPIC|" -e "s|@FLUSH_MS@|$NGINX_FLUSH_MS|" -e "s|@BATCH_NUM@|$NGINX_BATCH_NUM|" \
				-e "s|@MAX_BUFFERING@|$NGINX_MAX_BUFFERING|" bench/peers/nginx.conf.in >"$dir/nginx.conf"
			nginx -c "$dir/nginx.conf" -p "$dir" >"$dir/server.log" 2>&1 &
			server_pid=$!
			ready=http://$addr/readyz
			errlog=$dir/error.log
			;;
		beacongate)
			addr=127.0.0.1:$(free_port)
			admin=127.0.0.1:$(free_port)
			# The flags of `make bench`'s spawned gateway (bench/spawn.go).
			"$GATEWAY" -http.listen "$addr" -admin.listen "$admin" -kafka.brokers "$broker" -kafka.topic "$TOPIC" \
				-gateway.id beacongate-peers -shutdown.drain 0s -spool.dir "$dir/spool" >"$dir/server.log" 2>&1 &
			server_pid=$!
			ready=http://$addr/readyz
			errlog=$dir/server.log
			;;
		*) die "unknown server $server (SERVERS: do-nothing nginx beacongate)" ;;
		esac
		# A port found free can be taken by someone else before the server
		# binds it: try again on other ports.
		wait_ready "$ready" "$server_pid" "$errlog" && break
		((attempt < 3)) || die "$server did not start, three times"
	done

	local cpu0 cpu1 rss out
	cpu0=$(cpu_ticks)
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s bench/peers/pixel.lua "http://$addr/i")
	local requests non2xx sockerr dur_us p99 sent
	sent=$(awk '/^peers sent /{print $3}' <<<"$out")
	requests=$(awk '/^peers requests /{print $3}' <<<"$out")
	non2xx=$(awk '/^peers non2xx /{print $3}' <<<"$out")
	sockerr=$(awk '/^peers socket_errors /{print $3}' <<<"$out")
	dur_us=$(awk '/^peers duration_us /{print $3}' <<<"$out")
	p99=$(awk '/^peers latency_p99_us /{print $3}' <<<"$out")
	[[ -n $requests && -n $dur_us ]] || die "$server: wrk printed no summary: $out"
	local acked=$((requests - non2xx))

	# Delivery: until the topic holds every request sent (the ones in
	# flight at the end included), or every acknowledged one and nothing
	# more comes for 1 s, or it stops growing for 5 s (lua-resty-kafka
	# flushes every NGINX_FLUSH_MS); at most DELIVERY_TIMEOUT. drain is
	# when the acknowledged ones were all there.
	local start now last=-1 still=0 offs=0 drain=-
	start=$(date +%s.%N)
	if [[ $server != do-nothing ]]; then
		while :; do
			offs=$(end_offsets)
			now=$(date +%s.%N)
			if ((offs >= acked)) && [[ $drain == - ]]; then
				drain=$(awk -v a="$start" -v b="$now" 'BEGIN {printf "%.1f", b - a}')
			fi
			if ((offs == last)); then
				still=$((still + 1))
			else
				still=0
			fi
			last=$offs
			((offs >= sent)) && break
			[[ $drain != - ]] && ((still >= 5)) && break
			if ((still >= 25)) || awk -v a="$start" -v b="$now" -v t="$DELIVERY_TIMEOUT" 'BEGIN {exit !(b - a > t)}'; then
				[[ $drain == - ]] && drain=">$(awk -v a="$start" -v b="$now" 'BEGIN {printf "%.0f", b - a}')"
				break
			fi
			sleep 0.2
		done
	fi
	cpu1=$(cpu_ticks)
	rss=$(peak_rss_kib)

	local notes=()
	if [[ $server == nginx ]]; then
		local stats
		stats=$(curl -s "http://$addr/stats" || true)
		notes+=("lua-resty-kafka: $(tr '\n' ' ' <<<"$stats")(dropped: ring buffer full, answered 503; failed: given up after retries)")
	fi
	if [[ $server == beacongate ]]; then
		notes+=("$(curl -s "http://$admin/metrics" | awk '/^beacongate_records_lost_total/{printf "%s %s ", $1, $2}')")
	fi

	case $server in
	nginx) stop_pid "$server_pid" QUIT ;; # graceful: workers flush what they hold
	*) stop_pid "$server_pid" TERM ;;
	esac
	local delivered=0 after_stop=0 value_bytes
	if [[ $server != do-nothing ]]; then
		after_stop=$(end_offsets)
		read -r delivered value_bytes < <(count_records)
		((delivered > 0)) && notes+=("records of $value_bytes B on average")
		if ((delivered > sent)); then
			notes+=("$((delivered - sent)) records more than requests sent: duplicates")
		elif ((delivered > acked)); then
			notes+=("$((delivered - acked)) delivered records were not acknowledged: in flight when wrk stopped ($((sent - requests)) unanswered)")
		fi
		if ((after_stop != offs)); then
			notes+=("$((after_stop - offs)) records more after the server stopped (not in the CPU figure)")
		fi
	fi
	stop_pid "$broker_pid" TERM

	local errors
	errors=$(grep -cE '\[(error|crit|alert|emerg)\]|"level":"(error|dpanic|panic|fatal)"' "$errlog" || true)
	if ((errors > 0)); then
		notes+=("$errors error lines in its log, first: $(grep -m3 -E '\[(error|crit|alert|emerg)\]|"level":"(error|dpanic|panic|fatal)"' "$errlog" | cut -c1-300 | tr '\n' '|')")
	fi
	((sockerr > 0)) && notes+=("wrk: $sockerr socket errors")
	((non2xx > 0)) && notes+=("wrk: $non2xx non-2xx answers")

	# run server acked/s acked delivered lost cpu_us peak_MiB drain p99_ms
	awk -v run="$run" -v s="$server" -v acked="$acked" -v dur="$dur_us" -v del="$delivered" \
		-v cpu=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v rss="$rss" -v drain="$drain" -v p99="$p99" 'BEGIN {
		per = (s == "do-nothing") ? acked : del
		# A loss smaller than the requests in flight at the end could hide
		# behind them: this is a lower bound (make bench accounts per event).
		lost = (s == "do-nothing") ? "-" : (acked > del ? acked - del : 0)
		if (s == "do-nothing") del = "-"
		printf "%s\t%s\t%.0f\t%d\t%s\t%s\t%s\t%.1f\t%s\t%.1f\n", run, s, acked / (dur / 1e6), acked, del, lost,
			(per > 0 ? sprintf("%.1f", cpu * 1e6 / hz / per) : "-"), rss / 1024, drain, p99 / 1000
	}' >>"$results"
	local n
	for n in "${notes[@]}"; do
		[[ -n $n ]] && echo "  $server: $n"
	done
	[[ -f $dir/error.log ]] && cp "$dir/error.log" "bench-out/peers-$stamp-run$run-nginx-error.log"
	return 0
}

# ---- report ----------------------------------------------------------------

table() {
	awk -F'\t' -v run="$1" 'BEGIN {
		printf "%-11s %12s %10s %10s %8s %10s %9s %8s %8s\n", "server", "acked/s", "acked", "delivered", "lost", "CPU µs/ev", "peak MiB", "drain s", "p99 ms"
	}
	$1 == run {
		printf "%-11s %12s %10s %10s %8s %10s %9s %8s %8s\n", $2, $3, $4, $5, $6, $7, $8, $9, $10
		a[$2] = $3; c[$2] = $7; m[$2] = $8
	}
	END {
		for (i = 1; i <= 2; i++) {
			o = (i == 1) ? "nginx" : "do-nothing"
			if (!("beacongate" in a) || !(o in a) || a[o] == 0 || c[o] + 0 == 0 || c["beacongate"] + 0 == 0 || m[o] == 0) continue
			printf "beacongate/%-11s acked/s %.2f   CPU per beacon %.2f   peak RSS %.2f\n", o, a["beacongate"] / a[o], c["beacongate"] / c[o], m["beacongate"] / m[o]
		}
	}' "$results"
}

echo "== make bench-peers: commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)'), $(date -u '+%F %T UTC')"
echo "   $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start; wrk -t$THREADS -c$CONNS -d$DURATION, ~800 B pixel GETs (bench/peers/pixel.lua)"
echo "   nginx $(nginx -v 2>&1 | sed 's|.*/||') with $NGINX_WORKERS workers, lua-resty-kafka $(dpkg-query -W -f '${Version}' lua-nginx-kafka 2>/dev/null || echo '?') (async, flush_time ${NGINX_FLUSH_MS} ms, batch_num $NGINX_BATCH_NUM, max_buffering $NGINX_MAX_BUFFERING, acks 1, no compression)"
echo "   beacongate $GATEWAY ($("$GATEWAY" -version 2>/dev/null | head -1 || echo '?')); a fresh broker ($PARTITIONS partitions) per server; $RUNS runs"
echo "   acked = 2xx answers; delivered = records read back from the topic; lost = acked - delivered when positive;"
echo "   CPU µs/ev = the server's CPU (all processes and threads) from the load's start to full delivery, per delivered record (do-nothing: per request)"
for ((r = 1; r <= RUNS; r++)); do
	echo
	echo "== run $r of $RUNS"
	for s in $SERVERS; do
		measure "$r" "$s"
	done
	table "$r"
done

echo
echo "== range over $RUNS runs (min-max)"
awk -F'\t' -v servers="$SERVERS" '
	{ n[$2]++; if (!($2 in lo)) { lo[$2] = hi[$2] = $3; mlo[$2] = mhi[$2] = $8 }
	  if ($3 < lo[$2]) lo[$2] = $3; if ($3 > hi[$2]) hi[$2] = $3
	  if ($7 != "-" && (!($2 in clo) || $7 + 0 < clo[$2])) clo[$2] = $7 + 0
	  if ($7 != "-" && (!($2 in chi) || $7 + 0 > chi[$2])) chi[$2] = $7 + 0
	  if ($8 < mlo[$2]) mlo[$2] = $8; if ($8 > mhi[$2]) mhi[$2] = $8
	  if ($6 != "-") lost[$2] += $6; order[$2] = NR }
	END {
		printf "%-11s %17s %14s %14s %s\n", "server", "acked/s", "CPU µs/ev", "peak MiB", "lost (sum)"
		k = split(servers, order, " ")
		for (i = 1; i <= k; i++) if ((s = order[i]) in n) printf "%-11s %17s %14s %14s %s\n", s, lo[s] "-" hi[s], (s in clo) ? clo[s] "-" chi[s] : "-", mlo[s] "-" mhi[s], (s in lost) ? lost[s] : "-"
	}' "$results"
awk -F'\t' '
	{ a[$1, $2] = $3; c[$1, $2] = $7; runs[$1] = 1 }
	END {
		for (i = 1; i <= 2; i++) {
			o = (i == 1) ? "nginx" : "do-nothing"; k = 0
			for (r in runs) {
				if (!((r, "beacongate") in a) || !((r, o) in a) || a[r, o] == 0 || c[r, o] + 0 == 0 || c[r, "beacongate"] + 0 == 0) continue
				x = a[r, "beacongate"] / a[r, o]; y = c[r, "beacongate"] / c[r, o]
				if (k == 0 || x < xl) xl = x; if (k == 0 || x > xh) xh = x
				if (k == 0 || y < yl) yl = y; if (k == 0 || y > yh) yh = y
				k++
			}
			if (k) printf "beacongate/%-11s acked/s %.2f-%.2f   CPU per beacon %.2f-%.2f   (within each run)\n", o, xl, xh, yl, yh
		}
	}' "$results"
echo
echo "report: $report"
