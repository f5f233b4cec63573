// SPDX-License-Identifier: MIT
/*
 * fault.c - turn a crash inside a task into a report that names the task.
 *
 * A task that runs off the end of its stack touches the guard page below it
 * (stack.c) and gets SIGSEGV.  The handler cannot run on the overflowed
 * stack, so every worker has an alternate signal stack.  The handler finds
 * the running task through the worker, checks whether the fault address lies
 * in that task's guard page, and prints either
 *     weft: stack overflow in task <id> "<name>" (stack <size> bytes)
 * or, for any other fault in a task, the signal, the task and a backtrace;
 * then it aborts.  Faults outside tasks get the default action, as if we were
 * not here.  The handler is installed only over SIG_DFL: an application that
 * installed its own keeps it.
 */
#include <execinfo.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scheduler/internal.h"

#define ALTSTACK_SIZE (64 * 1024)

static pthread_once_t once = PTHREAD_ONCE_INIT;
static __thread void *altstack;

static void say(const char *s)
{
	ssize_t r = write(STDERR_FILENO, s, strlen(s));
	(void)r;
}

static void handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	struct weft__worker *w = weft__worker_here();
	struct weft_task *t = w ? atomic_load_explicit(&w->current, memory_order_relaxed) : NULL;
	if (!t) {
		/* Not ours: default action on return, as if never installed. */
		signal(sig, SIG_DFL);
		return;
	}
	char buf[256];
	const char *addr = si->si_addr;
	const char *guard = t->stack ? (const char *)t->stack->base : NULL;
	if (sig == SIGSEGV && guard && addr >= guard && addr < guard + weft__page_size()) {
		snprintf(buf, sizeof(buf),
			 "weft: stack overflow in task %" PRIu64 " \"%s\" (stack %zu bytes)\n", t->id,
			 t->name, t->stack->size);
		say(buf);
	} else {
		snprintf(buf, sizeof(buf),
			 "weft: %s at address %p in task %" PRIu64 " \"%s\"; backtrace:\n",
			 strsignal(sig), si->si_addr, t->id, t->name);
		say(buf);
		void *frames[64];
		int n = backtrace(frames, 64);
		backtrace_symbols_fd(frames, n, STDERR_FILENO);
	}
	signal(SIGABRT, SIG_DFL);
	abort();
}

static void install(void)
{
	/* backtrace() loads libgcc on first use, which allocates: do it now,
	 * not in the handler. */
	void *f[1];
	backtrace(f, 1);
	int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction old;
		if (sigaction(sigs[i], NULL, &old) < 0 || old.sa_handler != SIG_DFL ||
		    (old.sa_flags & SA_SIGINFO))
			continue;
		struct sigaction sa = {0};
		sa.sa_sigaction = handler;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		sigaction(sigs[i], &sa, NULL);
	}
}

void weft__fault_install(void)
{
	pthread_once(&once, install);
}

void weft__fault_thread_init(void)
{
	altstack = malloc(ALTSTACK_SIZE);
	if (!altstack)
		return; /* reports then need the task's own stack; still works
			 * for faults other than overflow */
	stack_t ss = {.ss_sp = altstack, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
	if (sigaltstack(&ss, NULL) < 0) {
		free(altstack);
		altstack = NULL;
	}
}

void weft__fault_thread_fini(void)
{
	if (!altstack)
		return;
	stack_t ss = {.ss_flags = SS_DISABLE};
	sigaltstack(&ss, NULL);
	free(altstack);
	altstack = NULL;
}
