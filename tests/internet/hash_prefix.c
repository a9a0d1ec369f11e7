/* Finds 8 bytes that, appended to a file, make its sha256 start with 8 given hex digits (32 bits):
 * how tests/internet gives a made-up weights file the name torchvision gives the real one
 * (<name>-<first 8 hex of sha256>.pth), which atml checks. ~2^32 SHA-256 blocks: a minute or two
 * on two cores with SHA extensions. Usage: hash_prefix FILE HEX8 THREADS (FILE's length must be
 * 24 mod 64, so the 8 bytes and the padding fill the last block). Prints the 8 bytes as hex.
 * BITS (default 32) matches only that many leading bits, to test it in a second. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static SHA256_CTX base;
static unsigned char tail[64];
static uint32_t target, mask = 0xffffffffu;
static int threads;
static volatile int found;
static uint64_t answer;

static void *search(void *arg) {
    uint64_t start = (uint64_t)(uintptr_t)arg;
    unsigned char block[64];
    memcpy(block, tail, 64);
    for (uint64_t n = start; !found && n < (1ULL << 40); n += threads) {
        memcpy(block + 24, &n, 8);
        SHA256_CTX c = base;
        SHA256_Transform(&c, block);
        if ((c.h[0] & mask) == target) { answer = n; found = 1; }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) { fprintf(stderr, "usage: hash_prefix FILE HEX8 THREADS [BITS]\n"); return 2; }
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 2; }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (size % 64 != 24) { fprintf(stderr, "length %ld is not 24 mod 64\n", size); return 2; }
    unsigned char *data = malloc(size);
    if (fread(data, 1, size, f) != (size_t)size) { perror("read"); return 2; }
    SHA256_Init(&base);
    SHA256_Update(&base, data, size - 24);
    memset(tail, 0, 64);
    memcpy(tail, data + size - 24, 24);
    tail[32] = 0x80;
    uint64_t bits = (uint64_t)(size + 8) * 8;
    for (int i = 0; i < 8; i++) tail[63 - i] = (unsigned char)(bits >> (8 * i));
    target = (uint32_t)strtoul(argv[2], NULL, 16);
    threads = atoi(argv[3]);
    if (argc == 5) mask = ~0u << (32 - atoi(argv[4]));  /* a shorter prefix: for testing this program */
    target &= mask;
    pthread_t t[64];
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, search, (void *)(uintptr_t)i);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 8; i++) printf("%02x", (unsigned char)(answer >> (8 * i)));
    printf("\n");
    return found ? 0 : 1;
}
