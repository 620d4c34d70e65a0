// Free-running host for the Verilated board top (rtl/board.py, no PLL): bytes on stdin go out
// on uart_rx, what the design sends on uart_tx comes back on stdout.
//
// Usage: uart_host CLOCKS_PER_BIT
// Bytes from stdin are sent 8N1 at CLOCKS_PER_BIT cycles per bit, back to back. uart_tx is
// decoded by sampling each bit at its centre; a byte with a bad stop bit is dropped and
// counted. The clock runs while there is a byte to send, one is being received or the design's
// link_idle is low; only when all three are quiet does the harness flush stdout and block on
// stdin, so simulated time stands still while the host thinks (as if the host answered at
// once). Python only exchanges bytes: the protocol is the design's business. At end of input,
// once quiet, it prints "uart_host: cycles N simulated_seconds S framing_errors E" on stderr
// (S: the wall time spent running the clock) and exits. (Verilator keeps these port names.)
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <vector>

#include "Vboard.h"
#include "verilated.h"

static std::unique_ptr<Vboard> top;
static uint64_t cycles = 0;

static void tick() {
    top->clk = 0;
    top->eval();
    top->clk = 1;
    top->eval();
    cycles++;
}

// Read what stdin has (blocking or not); false at end of input.
static bool refill(std::deque<uint8_t>& queue, bool block) {
    if (!block) {
        pollfd fd{0, POLLIN, 0};
        if (poll(&fd, 1, 0) <= 0) return true;
    }
    uint8_t buffer[4096];
    const ssize_t n = read(0, buffer, sizeof buffer);
    if (n <= 0) return false;
    queue.insert(queue.end(), buffer, buffer + n);
    return true;
}

int main(int argc, char** argv) {
    if (argc < 2 || std::atoi(argv[1]) < 4) {
        std::fprintf(stderr, "usage: uart_host CLOCKS_PER_BIT (at least 4)\n");
        return 2;
    }
    const int cpb = std::atoi(argv[1]);
    auto context = std::make_unique<VerilatedContext>();
    top = std::make_unique<Vboard>(context.get());
    top->uart_rx = 1;
    top->rst = 1;
    for (int i = 0; i < 4; i++) tick();
    top->rst = 0;
    cycles = 0;

    std::deque<uint8_t> input;
    std::vector<uint8_t> output;
    uint16_t sending = 0;    // the 10 line levels of the byte being sent, LSB first
    int send_bits = 0, send_timer = 0;
    int recv_bits = -1, recv_timer = 0;  // -1: waiting for a start bit
    uint32_t recv_value = 0;
    uint64_t framing_errors = 0;
    bool open = true;
    double busy_seconds = 0;
    auto started = std::chrono::steady_clock::now();

    for (;;) {
        const bool quiet = send_bits == 0 && input.empty() && recv_bits < 0 && top->link_idle;
        if (quiet) {
            busy_seconds += std::chrono::duration<double>(
                std::chrono::steady_clock::now() - started).count();
            if (!output.empty()) {
                std::fwrite(output.data(), 1, output.size(), stdout);
                output.clear();
            }
            std::fflush(stdout);
            if (!open || !refill(input, true)) break;
            started = std::chrono::steady_clock::now();
        } else if (open && input.empty() && send_bits == 0 && (cycles & 255) == 0) {
            open = refill(input, false);
        }
        if (send_bits == 0 && !input.empty()) {
            sending = uint16_t(input.front()) << 1 | 0x200;
            input.pop_front();
            send_bits = 10;
            send_timer = cpb;
        }
        top->uart_rx = send_bits ? (sending & 1) : 1;
        tick();
        if (send_bits && --send_timer == 0) {
            sending >>= 1;
            send_bits--;
            send_timer = cpb;
        }
        const int line = top->uart_tx;
        if (recv_bits < 0) {
            if (!line) {
                recv_bits = 0;
                recv_timer = cpb / 2;
                recv_value = 0;
            }
        } else if (--recv_timer == 0) {
            recv_timer = cpb;
            if (recv_bits == 0 && line) {
                recv_bits = -1;  // not a start bit after all
            } else if (recv_bits >= 1 && recv_bits <= 8) {
                recv_value |= uint32_t(line) << (recv_bits - 1);
                recv_bits++;
            } else if (recv_bits == 9) {
                if (line) output.push_back(uint8_t(recv_value));
                else framing_errors++;
                recv_bits = -1;
            } else {
                recv_bits++;
            }
        }
    }
    std::fprintf(stderr, "uart_host: cycles %llu simulated_seconds %.6f framing_errors %llu\n",
                 (unsigned long long)cycles, busy_seconds, (unsigned long long)framing_errors);
    top->final();
    top.reset();  // the model must go before its context
    return 0;
}
