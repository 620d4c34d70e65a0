// Free-running stream of floating-point cases through the Verilated FPU bank.
//
// Usage: fpu_stream OP INPUT OUTPUT SLACK
//   INPUT  little-endian uint32 triples (a, b, c), one case each
//   OUTPUT written with one little-endian uint32 result per case, in order
//   SLACK  cycles allowed beyond one per case before the watchdog fails the run
// One case enters per cycle; results are collected whenever out_valid is high. Prints
// "cycles N seconds S" (simulation loop only, file I/O excluded) on success.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "Vfpu_bank.h"
#include "verilated.h"

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s OP INPUT OUTPUT SLACK\n", argv[0]);
        return 2;
    }
    const unsigned op = static_cast<unsigned>(std::strtoul(argv[1], nullptr, 10));
    const uint64_t slack = std::strtoull(argv[4], nullptr, 10);

    std::FILE* in = std::fopen(argv[2], "rb");
    if (!in) { std::perror(argv[2]); return 2; }
    std::fseek(in, 0, SEEK_END);
    const long bytes = std::ftell(in);
    std::fseek(in, 0, SEEK_SET);
    const size_t cases = static_cast<size_t>(bytes) / 12;
    std::vector<uint32_t> operands(cases * 3);
    if (std::fread(operands.data(), 12, cases, in) != cases) { std::perror("read"); return 2; }
    std::fclose(in);

    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vfpu_bank>(context.get());
    std::vector<uint32_t> results;
    results.reserve(cases);

    top->clk = 0;
    top->rst = 1;
    top->in_valid = 0;
    top->op = op;
    for (int i = 0; i < 4; i++) {
        top->clk = !top->clk;
        top->eval();
    }
    top->rst = 0;

    const auto start = std::chrono::steady_clock::now();
    const uint64_t budget = cases + slack;
    uint64_t cycle = 0;
    size_t sent = 0;
    while (results.size() < cases) {
        if (cycle >= budget) {
            std::fprintf(stderr, "watchdog: %zu of %zu results after %llu cycles\n",
                         results.size(), cases, static_cast<unsigned long long>(cycle));
            return 3;
        }
        if (sent < cases) {
            top->a = operands[3 * sent];
            top->b = operands[3 * sent + 1];
            top->c = operands[3 * sent + 2];
            top->in_valid = 1;
            sent++;
        } else {
            top->in_valid = 0;
        }
        top->clk = 0;
        top->eval();
        if (top->out_valid) results.push_back(top->result);
        top->clk = 1;
        top->eval();
        cycle++;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    top->final();

    std::FILE* out = std::fopen(argv[3], "wb");
    if (!out) { std::perror(argv[3]); return 2; }
    if (std::fwrite(results.data(), 4, cases, out) != cases) { std::perror("write"); return 2; }
    std::fclose(out);
    std::printf("cycles %llu seconds %.6f\n", static_cast<unsigned long long>(cycle), seconds);
    return 0;
}
