/// Sorting many numbers: a radix sort on their bits, several times faster than a comparison sort for the columns of
/// a data set (binning, drift profiles).
extension Array where Element == Double {
    /// The values in ascending order, by a least-significant-digit radix sort of their bits (stable, so equal values
    /// keep their order). Equal to `sorted()` but that every -0.0 comes before every 0.0. NaN must not be among them.
    func radixSorted() -> [Double] {
        let n = count
        guard n > 1 else { return self }
        // Bits that order as the numbers do: negative numbers' bits all flipped, others' sign bit set.
        var keys = map { value -> UInt64 in
            let bits = value.bitPattern
            return bits >> 63 == 1 ? ~bits : bits | (1 << 63)
        }
        var scratch = [UInt64](repeating: 0, count: n)
        let digitBits = 11, digits = 6, radix = 1 << digitBits
        // Every digit's counts in one pass.
        var counts = [Int](repeating: 0, count: digits * radix)
        keys.withUnsafeBufferPointer { keys in
            counts.withUnsafeMutableBufferPointer { counts in
                for key in keys {
                    for digit in 0..<digits { counts[digit &* radix &+ Int((key >> UInt64(digit &* digitBits)) & UInt64(radix - 1))] &+= 1 }
                }
            }
        }
        for digit in 0..<digits {
            let shift = UInt64(digit * digitBits)
            // A digit that every key shares leaves the order as it is.
            if counts[digit * radix + Int((keys[0] >> shift) & UInt64(radix - 1))] == n { continue }
            var offsets = [Int](repeating: 0, count: radix)
            var total = 0
            for bucket in 0..<radix { offsets[bucket] = total; total += counts[digit * radix + bucket] }
            keys.withUnsafeBufferPointer { source in
                scratch.withUnsafeMutableBufferPointer { target in
                    offsets.withUnsafeMutableBufferPointer { offsets in
                        for key in source {
                            let bucket = Int((key >> shift) & UInt64(radix - 1))
                            target[offsets[bucket]] = key
                            offsets[bucket] &+= 1
                        }
                    }
                }
            }
            swap(&keys, &scratch)
        }
        return keys.map { key in Double(bitPattern: key >> 63 == 1 ? key & ~(1 << 63) : ~key) }
    }
}
