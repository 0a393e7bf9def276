package producer

/*
#ifndef _GNU_SOURCE
#define _GNU_SOURCE // RUSAGE_THREAD
#endif
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#define BG_MMAP_THRESHOLD (4 << 20)
#define BG_TRIM_THRESHOLD (8 << 20)
#define BG_MIN_ARENAS 2

static int bg_malloc_tune(int mmap_max, int trim) {
	return mallopt(M_MMAP_THRESHOLD, mmap_max) == 1 && mallopt(M_TRIM_THRESHOLD, trim) == 1;
}

// bg_cpus is the cores this process may use: the CPUs it may run on, or
// fewer if its cgroup (v2, /sys/fs/cgroup/cpu.max: "quota period" or
// "max period") has a CPU limit, rounded up.
static int bg_cpus(void) {
	cpu_set_t set;
	int n = 0;
	if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
	FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
	if (f) {
		char quota[32];
		long period;
		if (fscanf(f, "%31s %ld", quota, &period) == 2 && strcmp(quota, "max") != 0 && period > 0) {
			long c = (atol(quota) + period - 1) / period;
			if (c > 0 && (n == 0 || c < n)) n = (int)c;
		}
		fclose(f);
	}
	return n;
}

// What bg_malloc_init did, for Go to log (malloc.go).
static int bg_tunables;   // GLIBC_TUNABLES sets malloc parameters: nothing changed
static int bg_thresholds; // the thresholds were set
static int bg_arena_max;  // the arena limit set, 0 if glibc refused it

// bg_malloc_init runs when the program is loaded, before the Go runtime
// starts its threads (a constructor; malloc.go says why so early).
__attribute__((constructor)) static void bg_malloc_init(void) {
	const char *t = getenv("GLIBC_TUNABLES");
	if (t && strstr(t, "glibc.malloc.")) {
		bg_tunables = 1; // an operator's own settings win
		return;
	}
	if (!(bg_thresholds = bg_malloc_tune(BG_MMAP_THRESHOLD, BG_TRIM_THRESHOLD))) return;
	int n = bg_cpus();
	if (n < BG_MIN_ARENAS) n = BG_MIN_ARENAS;
	if (mallopt(M_ARENA_MAX, n) == 1) bg_arena_max = n;
}

static int bg_malloc_state(int which) {
	switch (which) {
	case 0: return bg_tunables;
	case 1: return bg_thresholds;
	default: return bg_arena_max;
	}
}

// bg_arena_count counts the process's malloc arenas: malloc_info writes
// one <heap nr="..."> element for each.
static int bg_arena_count(void) {
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f) return -1;
	int ok = malloc_info(0, f) == 0;
	fclose(f);
	int n = 0;
	for (char *p = buf; ok && (p = strstr(p, "<heap nr=")) != NULL; p++) n++;
	free(buf);
	return ok ? n : -1;
}

// bg_threads_malloc starts n threads that each malloc while all of them
// are alive (a barrier holds each until every one has allocated, so none
// can inherit the arena of one that has exited), joins them and returns
// the arena count: what n threads producing at once leave behind
// (n == 0: the count now).
struct bg_arena_arg { pthread_barrier_t *b; };

static void *bg_arena_thread(void *p) {
	struct bg_arena_arg *a = p;
	void *volatile m = malloc(64); // volatile: a compiler may drop an unused malloc and its free
	pthread_barrier_wait(a->b);
	free(m);
	return NULL;
}

static int bg_threads_malloc(int n) {
	pthread_barrier_t b;
	pthread_t t[64];
	struct bg_arena_arg a = {&b};
	if (n == 0) return bg_arena_count();
	if (n < 0 || n > 64 || pthread_barrier_init(&b, NULL, n) != 0) return -1;
	int started = 0;
	for (; started < n; started++) {
		if (pthread_create(&t[started], NULL, bg_arena_thread, &a) != 0) break;
	}
	if (started < n) return -1; // the barrier would hold the others forever; the test fails
	for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
	pthread_barrier_destroy(&b);
	return bg_arena_count();
}

// bg_churn allocates and frees what rd_kafka_snappy_init_env_sg and
// rd_kafka_snappy_free_env do for one batch, rounds times, on a thread
// of its own (a fresh arena, as a broker thread has), writing and
// counting the thread's minor page faults.
struct bg_churn_arg { int rounds; long faults; };

static void *bg_churn_thread(void *p) {
	struct bg_churn_arg *a = p;
	struct rusage before, after;
	getrusage(RUSAGE_THREAD, &before);
	for (int i = 0; i < a->rounds; i++) {
		size_t sizes[3] = {32768, 65536, 76490};
		char *b[3];
		for (int j = 0; j < 3; j++) {
			b[j] = malloc(sizes[j]);
			if (!b[j]) { a->faults = -1; return NULL; }
			for (size_t k = 0; k < sizes[j]; k += 4096) b[j][k] = (char)i;
		}
		for (int j = 0; j < 3; j++) free(b[j]);
	}
	getrusage(RUSAGE_THREAD, &after);
	a->faults = after.ru_minflt - before.ru_minflt;
	return NULL;
}

static long bg_churn(int rounds) {
	struct bg_churn_arg a = {rounds, 0};
	pthread_t t;
	if (pthread_create(&t, NULL, bg_churn_thread, &a) != 0) return -1;
	pthread_join(t, NULL);
	return a.faults;
}
#else
#define BG_MMAP_THRESHOLD (4 << 20)
#define BG_TRIM_THRESHOLD (8 << 20)
static int bg_malloc_tune(int mmap_max, int trim) { return -1; }
static int bg_malloc_state(int which) { return which == 1 ? -1 : 0; } // not glibc
static long bg_churn(int rounds) { return -2; }
static int bg_threads_malloc(int n) { return -2; }
#endif
*/
import "C"

import (
	"sync"

	"go.uber.org/zap"
)

// librdkafka compresses every batch with scratch memory it mallocs and
// frees around the call: rd_kafka_snappy_init_env_sg takes a 32 KiB hash
// table, a 64 KiB block and a 76 KiB output block, ~170 KiB. Each piece
// is below glibc's mmap threshold (128 KiB), so it comes from the broker
// thread's arena; freed, it leaves more than the trim threshold (also
// 128 KiB) free at the arena's top, and glibc gives it back to the kernel
// (madvise, with a TLB shootdown to the other cores), only to fault the
// same pages in again, zeroed, for the next batch. glibc raises both
// thresholds by itself only after freeing an mmapped block, which this
// pattern never does. With large batches (the asynchronous path under
// load) that is a small share; with the small batches of acknowledged
// requests, which flush every millisecond, or of a lightly loaded
// gateway, a profile of the broker thread showed heap_trim, sysmalloc and
// page faults at about half of its CPU. docs/performance.md has the
// figures.
//
// The fix is the threshold glibc would pick for itself once it had seen
// a large block: blocks up to 4 MiB come from the arenas (a batch of
// librdkafka's default batch.size, 1 MB, and its compression scratch
// included) and an arena's top is trimmed only past 8 MiB, so the memory
// a broker thread needs for one batch stays with it. The cost is at most
// 8 MiB of free memory kept per arena that once held that much.
//
// Arenas. glibc gives each new thread that mallocs an arena of its own,
// up to 8 per core. librdkafka mallocs
// each record's copy on whichever Go thread produces it (the Go runtime
// runs many, each a thread to glibc) and frees it on the broker thread
// after delivery, so records pass between a dozen or more arenas, each
// with its own top, free lists and up to the trim threshold kept: with
// 2 KB records two arenas instead of a dozen cost up to a fifth less CPU
// per record and 16-36 MiB less peak RSS (docs/performance.md, "glibc's
// arenas"). No more threads than the process has cores run at once, so
// the producer allows one arena per core, at least two.
//
// The limit must be set before the threads exist: glibc counts it
// against the arenas made so far, and a Go program's first threads make
// several (cgo's thread start mallocs) before any package initialises.
// So a C constructor sets limit and thresholds when the program is
// loaded, and sizes the limit the way Go sizes GOMAXPROCS, from the CPUs
// the process may run on and its cgroup's CPU limit; New logs what it
// did.
const (
	mallocMmapThreshold = C.BG_MMAP_THRESHOLD
	mallocTrimThreshold = C.BG_TRIM_THRESHOLD
)

var mallocLogOnce sync.Once

// logMalloc logs, once per process, what the constructor could not do or
// left to the operator.
func logMalloc(log *zap.Logger) {
	mallocLogOnce.Do(func() {
		switch {
		case C.bg_malloc_state(0) == 1:
			log.Info("GLIBC_TUNABLES sets malloc parameters: glibc's malloc thresholds and arenas left as given")
		case C.bg_malloc_state(1) == -1: // not glibc: its allocator has its own policy
		case C.bg_malloc_state(1) != 1:
			log.Warn("could not set glibc's malloc thresholds: librdkafka's batches may fault memory in and out",
				zap.Int("mmap_threshold", mallocMmapThreshold), zap.Int("trim_threshold", mallocTrimThreshold))
		case C.bg_malloc_state(2) == 0:
			log.Warn("could not limit glibc's malloc arenas: records pass between more arenas than cores")
		default:
			log.Debug("glibc's malloc tuned", zap.Int("arena_max", mallocArenas()),
				zap.Int("mmap_threshold", mallocMmapThreshold), zap.Int("trim_threshold", mallocTrimThreshold))
		}
	})
}

// mallocArenas is the arena limit the constructor set, 0 if none.
func mallocArenas() int { return int(C.bg_malloc_state(2)) }

// setMallocThresholds sets glibc's mmap and trim thresholds: 1 if it
// did, 0 if glibc refused, -1 where the allocator is not glibc.
func setMallocThresholds(mmap, trim int) int { return int(C.bg_malloc_tune(C.int(mmap), C.int(trim))) }

// threadsMalloc has n threads malloc at once and returns the process's
// arena count after: -1 on a failure, -2 where the allocator is not
// glibc. For the tests.
func threadsMalloc(n int) int { return int(C.bg_threads_malloc(C.int(n))) }

// churnFaults runs librdkafka's per-batch compression allocations rounds
// times on a new thread and returns its minor page faults: -1 on a
// failure, -2 where the allocator is not glibc. For the tests.
func churnFaults(rounds int) int64 { return int64(C.bg_churn(C.int(rounds))) }
