// Reads a train and a test CSV, trains one algorithm with the ML core, and prints one JSON line:
// wall time of read and fit, peak resident memory, and holdout metrics.
//
//   learning-benchmark TRAIN.csv TEST.csv TARGET TASK ALGORITHM [name=value ...]
import Foundation
import Learning

let arguments = CommandLine.arguments
guard arguments.count >= 6, let task = LearningTask(rawValue: arguments[4]), let algorithm = AlgorithmName(rawValue: arguments[5]) else {
    FileHandle.standardError.write(Data("usage: learning-benchmark TRAIN.csv TEST.csv TARGET TASK ALGORITHM [name=value ...]\n".utf8))
    exit(64)
}
var parameters: [String: ParameterValue] = [:]
for pair in arguments.dropFirst(6) {
    let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
    guard parts.count == 2 else { continue }
    parameters[parts[0]] = parts[1] == "true" ? .bool(true) : parts[1] == "false" ? .bool(false) : .number(Double(parts[1]) ?? 0)
}

func peakResidentMegabytes() -> Double {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
    return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
}

let start = Date()
let train = try CSVReader.read(try Data(contentsOf: URL(fileURLWithPath: arguments[1])), source: arguments[1])
let test = try CSVReader.read(try Data(contentsOf: URL(fileURLWithPath: arguments[2])), source: arguments[2])
let read = Date().timeIntervalSince(start)
let request = TrainingRequest(task: task, target: arguments[3], algorithm: algorithm, parameters: parameters)
let outcome = try Training.run(request, train: train, test: test)
var result: [String: Double] = ["read": read, "fit": outcome.timings["fit"] ?? 0, "peakMB": peakResidentMegabytes()]
for (name, value) in outcome.holdoutMetrics { result[name] = value }
let json = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))
