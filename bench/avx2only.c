// avx2only.so: makes a process on an AVX-512 machine see an AVX2-only CPU,
// so that every library in it picks its AVX2 kernels by itself. Used by the
// race (`MAX_ISA=avx2 bench/race-pytorch.sh`) as LD_PRELOAD for all three
// sides: static-nn (Rust's `is_x86_feature_detected!`), PyTorch (cpuinfo,
// oneDNN, MKL) and ONNX Runtime (MLAS), which has no switch of its own.
//
// How: Linux's CPUID faulting (`arch_prctl(ARCH_SET_CPUID, 0)`, CPU flag
// `cpuid_fault`) turns every `cpuid` instruction into a SIGSEGV. The handler
// runs the real `cpuid` (with faulting briefly off for this thread), clears
// the AVX-512 and AMX feature bits and resumes after the instruction. The
// setting is per thread and inherited by threads created later, so the
// constructor below, which runs before `main` and before any library asks,
// covers the whole process. It prints one line to stderr when the machine
// cannot fault on `cpuid`, and then does nothing (the race falls back to the
// libraries' own switches).
//
// Build: cc -O2 -shared -fPIC -o avx2only.so bench/avx2only.c
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static struct sigaction previous;

static long set_cpuid(int enabled) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

static void mask(uint32_t leaf, uint32_t subleaf, uint32_t *a, uint32_t *b, uint32_t *c,
                 uint32_t *d) {
    if (leaf == 7 && subleaf == 0) {
        // EBX: avx512f 16, dq 17, ifma 21, pf 26, er 27, cd 28, bw 30, vl 31
        *b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
                (1u << 30) | (1u << 31));
        // ECX: vbmi 1, vbmi2 6, vnni 11, bitalg 12, vpopcntdq 14
        *c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        // EDX: 4vnniw 2, 4fmaps 3, vp2intersect 8, amx-bf16 22, fp16 23,
        // amx-tile 24, amx-int8 25
        *d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) |
                (1u << 25));
    } else if (leaf == 7 && subleaf == 1) {
        // EAX: avx-vnni 4 (an AVX2 extension, but absent on the usual AVX2
        // machines, Haswell to Zen 3), avx512-bf16 5
        *a &= ~((1u << 4) | (1u << 5));
    } else if (leaf == 0xd && subleaf == 0) {
        // the XSAVE state components the CPU supports: drop opmask, ZMM_Hi256,
        // Hi16_ZMM (5-7) and the AMX tiles (17, 18)
        *a &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18));
    }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = (ucontext_t *)context;
    greg_t *r = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)r[REG_RIP];
    if (ip[0] == 0x0f && ip[1] == 0xa2 && set_cpuid(1) == 0) {
        uint32_t leaf = (uint32_t)r[REG_RAX], subleaf = (uint32_t)r[REG_RCX];
        uint32_t a, b, c, d;
        __cpuid_count(leaf, subleaf, a, b, c, d);
        set_cpuid(0);
        mask(leaf, subleaf, &a, &b, &c, &d);
        r[REG_RAX] = a;
        r[REG_RBX] = b;
        r[REG_RCX] = c;
        r[REG_RDX] = d;
        r[REG_RIP] += 2;
        return;
    }
    // not ours: hand it on, or fault again with the default action
    if (previous.sa_flags & SA_SIGINFO && previous.sa_sigaction) {
        previous.sa_sigaction(sig, info, context);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
    } else {
        signal(SIGSEGV, SIG_DFL);
    }
}

__attribute__((constructor)) static void avx2only_init(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &previous) != 0 || set_cpuid(0) != 0) {
        sigaction(SIGSEGV, &previous, NULL);
        fprintf(stderr, "avx2only.so: this machine cannot fault on cpuid (no cpuid_fault); "
                        "AVX-512 stays visible\n");
    }
}
