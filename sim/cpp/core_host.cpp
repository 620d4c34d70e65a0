// Free-running host for a Verilated CATERPILLAR core, driven over stdin/stdout.
//
// Commands (little-endian uint32 words on stdin), answered on stdout:
//   1 WRITE addr count data[count]   -> (nothing)       one bus write per cycle
//   2 READ  addr count               -> data[count]     one bus read per cycle
//   3 POLL  addr mask budget_lo budget_hi
//                                    -> value cycles_lo cycles_hi timeout(0/1)
//        reads addr every cycle until (value & mask) != 0 or `budget` reads were made (the
//        host link's POLL and the Amaranth device count the same way)
//   4 CYCLES                         -> cycles_lo cycles_hi (since the process started)
//   5 QUIT
// Python runs only between commands; the simulation loop is all C++. (Verilator escapes the
// double underscore of the Amaranth port names: bus__addr is bus___05Faddr.)
#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

// Built with -DCATERPILLAR_RING for the multicore top (module "ring", 32-bit addresses).
#ifdef CATERPILLAR_RING
#include "Vring.h"
using Top = Vring;
#else
#include "Vcore.h"
using Top = Vcore;
#endif
#include "verilated.h"

static std::unique_ptr<Top> top;
static uint64_t cycles = 0;

static void tick() {
    top->clk = 0;
    top->eval();
    top->clk = 1;
    top->eval();
    cycles++;
}

static bool get(uint32_t* words, size_t count) {
    return std::fread(words, 4, count, stdin) == count;
}

static void put(const uint32_t* words, size_t count) {
    std::fwrite(words, 4, count, stdout);
}

static uint32_t bus_read(uint32_t addr) {
    top->bus___05Faddr = addr;
    top->bus___05Fre = 1;
    tick();
    top->bus___05Fre = 0;
    top->clk = 0;
    top->eval();
    return top->bus___05Frdata;
}

int main(int argc, char** argv) {
    auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(argc, argv);
    top = std::make_unique<Top>(context.get());
    top->bus___05Fwe = 0;
    top->bus___05Fre = 0;
    top->rst = 1;
    tick();
    tick();
    top->rst = 0;
    cycles = 0;

    std::vector<uint32_t> buffer;
    uint32_t op;
    while (get(&op, 1)) {
        if (op == 1 || op == 2) {
            uint32_t header[2];
            if (!get(header, 2)) return 2;
            const uint32_t addr = header[0], count = header[1];
            buffer.resize(count);
            if (op == 1) {
                if (!get(buffer.data(), count)) return 2;
                for (uint32_t i = 0; i < count; i++) {
                    top->bus___05Faddr = addr + i;
                    top->bus___05Fwdata = buffer[i];
                    top->bus___05Fwe = 1;
                    tick();
                }
                top->bus___05Fwe = 0;
            } else {
                for (uint32_t i = 0; i < count; i++) buffer[i] = bus_read(addr + i);
                put(buffer.data(), count);
            }
        } else if (op == 3) {
            uint32_t args[4];
            if (!get(args, 4)) return 2;
            const uint64_t budget = args[2] | (uint64_t(args[3]) << 32);
            const uint64_t start = cycles;
            uint32_t value = 0, timeout = 1;
            while (cycles - start < budget) {
                value = bus_read(args[0]);
                if (value & args[1]) {
                    timeout = 0;
                    break;
                }
            }
            const uint64_t waited = cycles - start;
            uint32_t reply[4] = {value, uint32_t(waited), uint32_t(waited >> 32), timeout};
            put(reply, 4);
        } else if (op == 4) {
            uint32_t reply[2] = {uint32_t(cycles), uint32_t(cycles >> 32)};
            put(reply, 2);
        } else if (op == 5) {
            break;
        } else {
            std::fprintf(stderr, "core_host: unknown command %u\n", op);
            return 2;
        }
        std::fflush(stdout);
    }
    top->final();
    top.reset();  // the model must go before its context
    return 0;
}
