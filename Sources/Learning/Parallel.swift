import Foundation

/// Row ranges of a fixed size, so that sums reduce in the same order whatever the number of cores:
/// results are byte-identical on any machine.
struct RowChunks {
    static let size = 16_384
    let rows: Int
    var count: Int { (rows + Self.size - 1) / Self.size }
    func range(_ chunk: Int) -> Range<Int> { chunk * Self.size ..< min(rows, (chunk + 1) * Self.size) }

    /// Runs `body` for every chunk's rows, on all cores; a single chunk (a small request) runs on the calling thread.
    func forEach(_ body: (Range<Int>) -> Void) {
        let chunks = count
        if chunks <= 1 {
            if rows > 0 { body(0..<rows) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in shared.value(range(chunk)) }
        }
    }

    /// Runs `body` for every chunk's rows, on all cores, and returns what it returns, in chunk order.
    func map<Result>(_ body: (Range<Int>) -> Result) -> [Result] {
        var results = [Result?](repeating: nil, count: count)
        results.withUnsafeMutableBufferPointer { buffer in
            let shared = SharedPointer(base: buffer.baseAddress!)
            forEach { range in shared[range.lowerBound / Self.size] = body(range) }
        }
        return results.map { $0! }
    }

    /// Runs `body` for every chunk, on all cores; each chunk writes `width` doubles of its own, which are then
    /// summed chunk by chunk, in order.
    func sum(width: Int, _ body: @Sendable (Range<Int>, UnsafeMutablePointer<Double>) -> Void) -> [Double] {
        let chunks = count
        var partials = [Double](repeating: 0, count: max(chunks, 1) * width)
        partials.withUnsafeMutableBufferPointer { buffer in
            let shared = SharedPointer(base: buffer.baseAddress!)
            forEach { range in body(range, shared.base + range.lowerBound / Self.size * width) }
        }
        var total = [Double](repeating: 0, count: width)
        for chunk in 0..<chunks {
            for index in 0..<width { total[index] += partials[chunk * width + index] }
        }
        return total
    }
}
