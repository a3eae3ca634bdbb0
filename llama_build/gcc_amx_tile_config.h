/*
 * Forced into every C++ file of the llama.cpp build (g++ -include) by llama_build/install.py when the
 * compiler is GCC older than 13 on x86-64.
 *
 * Why: GCC 11 and 12 implement _tile_loadconfig() as inline assembly whose memory operand is one
 * pointer-sized value, so the compiler believes `ldtilecfg` reads 8 bytes of the 64-byte tile
 * configuration and drops the stores of the tile rows and column widths as dead. ggml's AMX kernels
 * (ggml-cpu/amx/mmq.cpp) build their configuration on the stack, so on CPUs with AMX (Intel Xeon 4th
 * generation and later) the tiles are configured with zero sizes and the first prompt decode of a
 * quantized model faults (llama.cpp issue 20824; GCC 13 uses a builtin instead). Here the operand is
 * the whole 64-byte block, so every byte of the configuration is written before the instruction runs.
 * The rest of GCC's AMX intrinsics are left as they are.
 */
#ifndef FINSENT_GCC_AMX_TILE_CONFIG_H
#define FINSENT_GCC_AMX_TILE_CONFIG_H

#if defined(__cplusplus) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13

/* Declares GCC's _tile_loadconfig (under a target pragma, so without -mamx-tile as well); its include
   guard keeps later includes from declaring it again, after the macro below exists. */
#include <immintrin.h>

struct finsent_tile_config_block {
    unsigned char bytes[64];
};

static inline __attribute__((__always_inline__)) void finsent_tile_loadconfig(const void *config) {
    __asm__ volatile("ldtilecfg\t%X0" : : "m"(*(const struct finsent_tile_config_block *)config));
}

#undef _tile_loadconfig
#define _tile_loadconfig(config) finsent_tile_loadconfig(config)

/* A mark in every library built this way, so a test (or `nm -D`) can tell the fix went in. */
extern "C" __attribute__((__weak__, __used__, __visibility__("default")))
const char finsent_gcc_amx_tile_config_fix[] = "llama_build/gcc_amx_tile_config.h";

#endif
#endif
