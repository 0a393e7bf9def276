package producer

/*
#ifndef _GNU_SOURCE
#define _GNU_SOURCE // RUSAGE_THREAD
#endif
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>

static int bg_malloc_tune(int mmap_max, int trim) {
	return mallopt(M_MMAP_THRESHOLD, mmap_max) == 1 && mallopt(M_TRIM_THRESHOLD, trim) == 1;
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
static int bg_malloc_tune(int mmap_max, int trim) { return -1; }
static long bg_churn(int rounds) { return -2; }
#endif
*/
import "C"

import (
	"os"
	"strings"
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
const (
	mallocMmapThreshold = 4 << 20
	mallocTrimThreshold = 8 << 20
)

var mallocOnce sync.Once

// tuneMalloc sets glibc's thresholds once per process, before librdkafka
// starts its threads. An operator's own GLIBC_TUNABLES for malloc win: it
// then changes nothing.
func tuneMalloc(log *zap.Logger) {
	mallocOnce.Do(func() {
		if strings.Contains(os.Getenv("GLIBC_TUNABLES"), "glibc.malloc.") {
			log.Info("GLIBC_TUNABLES sets malloc parameters: glibc's malloc thresholds left as given")
			return
		}
		switch setMallocThresholds(mallocMmapThreshold, mallocTrimThreshold) {
		case 1:
		case -1: // not glibc: its allocator has its own policy
		default:
			log.Warn("could not set glibc's malloc thresholds: librdkafka's batches may fault memory in and out",
				zap.Int("mmap_threshold", mallocMmapThreshold), zap.Int("trim_threshold", mallocTrimThreshold))
		}
	})
}

// setMallocThresholds sets glibc's mmap and trim thresholds: 1 if it
// did, 0 if glibc refused, -1 where the allocator is not glibc.
func setMallocThresholds(mmap, trim int) int { return int(C.bg_malloc_tune(C.int(mmap), C.int(trim))) }

// churnFaults runs librdkafka's per-batch compression allocations rounds
// times on a new thread and returns its minor page faults: -1 on a
// failure, -2 where the allocator is not glibc. For the tests.
func churnFaults(rounds int) int64 { return int64(C.bg_churn(C.int(rounds))) }
