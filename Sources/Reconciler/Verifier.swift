import Foundation
import InferenceGRPC
import Learning
public import Manifests
public import Registry

/// Checks a version against an environment's gates: offline on the holdout metrics its build measured, online
/// by sending the holdout rows, one request each, to the version loaded in a slot of the real server that takes
/// no traffic: its answers must equal the model's own predictions, and latency and errors are measured.
public struct Verifier: GateChecking {
    public let workspace: Workspace
    /// At most this many holdout rows are sent over HTTP.
    public var probeRows = 200

    public init(workspace: Workspace) {
        self.workspace = workspace
    }

    /// What the probe measured.
    public struct Probe: Sendable {
        public var requests: Int
        public var errors: Int
        public var mismatches: Int
        public var latencyP99Ms: Double
        /// Whether one row was also sent over gRPC (the server serves it), and whether its answer matched.
        /// Whether answers were compared with the model file's predictions (not for a model with its own server).
        public var compared = true
        public var grpcChecked = false
        public var grpcMatched = false
        public var errorRate: Double { requests == 0 ? 0 : Double(errors) / Double(requests) }
    }

    /// Every gate's result for `version` of `model` (loaded in `server` under its digest).
    public func verify(model: String, version: String, gates: [Gate], on server: any ServingTarget) throws -> [GateResult] {
        let metrics = try workspace.artifacts.metrics(version).holdout
        // The version's manifest and data at its source commit: its holdout set, read once for the probe and re-scoring.
        let inputs = try workspace.builder.inputs(model: model, ref: try workspace.artifacts.buildInfo(version).source)
        var results: [GateResult] = []
        // Champion / challenger: the version serving now, re-scored on this version's holdout set.
        var serving: (version: String, metrics: [String: Double])?
        var servingNote: String?
        if gates.contains(where: \.relativeToServing) {
            if let current = (try? server.state())?.routes[model]?.defaultVersion, current != version {
                serving = (current, try rescore(current, on: inputs))
            } else {
                // Nothing routed, or only this version (a first version is the default once loaded).
                servingNote = "no other version serves yet: passes"
            }
        }
        for gate in gates where gate.metric.isOffline {
            let value = metrics[gate.metric.rawValue]
            guard gate.relativeToServing else {
                results.append(
                    GateResult(
                        gate: gate.description, metric: gate.metric.rawValue, value: value,
                        passed: value.map { gate.passes($0) } ?? false, stage: "offline"))
                continue
            }
            guard let serving else {
                results.append(
                    GateResult(
                        gate: gate.description, metric: gate.metric.rawValue, value: value, passed: value != nil, stage: "offline",
                        note: servingNote))
                continue
            }
            let baseline = serving.metrics[gate.metric.rawValue]
            let passed = value.flatMap { value in baseline.map { gate.passes(value, serving: $0) } } ?? false
            results.append(
                GateResult(
                    gate: gate.description, metric: gate.metric.rawValue, value: value, passed: passed, stage: "offline",
                    serving: baseline, servingVersion: serving.version))
        }
        let probe = try self.probe(model: model, version: version, inputs: inputs, server: server)
        if probe.compared {
            results.append(
                GateResult(
                    gate: "predictions match the build's", metric: "predictionMismatches", value: Double(probe.mismatches),
                    passed: probe.mismatches == 0 && probe.requests > 0, stage: "online"))
        } else {
            // A model with its own server: its answers cannot be computed here; every probe must be answered.
            results.append(
                GateResult(
                    gate: "its own server answers every probe", metric: "probeErrors", value: Double(probe.errors),
                    passed: probe.errors == 0 && probe.requests > 0, stage: "online"))
        }
        if probe.grpcChecked {
            results.append(
                GateResult(
                    gate: probe.compared ? "the gRPC answer matches the build's" : "its own server answers over gRPC",
                    metric: "grpcMismatches", value: probe.grpcMatched ? 0 : 1,
                    passed: probe.grpcMatched, stage: "online"))
        }
        for gate in gates where !gate.metric.isOffline {
            let value = gate.metric == .latencyP99Ms ? probe.latencyP99Ms : probe.errorRate
            results.append(
                GateResult(gate: gate.description, metric: gate.metric.rawValue, value: value, passed: gate.passes(value), stage: "online"))
        }
        return results
    }

    /// The metrics `serving` scores on the holdout set of `inputs` (a candidate's test file at its source commit).
    func rescore(_ serving: String, on inputs: Builder.Inputs) throws -> [String: Double] {
        let file = try workspace.artifacts.model(serving)
        let test = inputs.manifest.data.test
        let holdout = try CSVReader.read(inputs.data[test]!, source: test, types: file.columnTypes)
        guard file.external != nil else { return try file.score(holdout) }
        // A model with its own server: its answers on the holdout set, scored here.
        let predictions = try workspace.builder.externalPredictions(
            of: serving, file: file, rows: try file.scorable(holdout), store: workspace.artifacts)
        return try file.score(predictions, on: holdout)
    }

    /// Sends holdout rows (of `inputs`, the version's manifest and data) to the version's own route and compares each
    /// answer with the model file's prediction.
    public func probe(model: String, version: String, inputs: Builder.Inputs, server: any ServingTarget) throws -> Probe {
        let file = try workspace.artifacts.model(version)
        let test = inputs.manifest.data.test
        let holdout = try CSVReader.read(inputs.data[test]!, source: test, types: file.columnTypes)
        // A model with its own server cannot be predicted here: its answers are checked for errors and latency only.
        let expected = file.external == nil ? try file.predict(holdout) : nil
        let features = file.pipeline.features
        let columns = features.map { feature in holdout.names.firstIndex(of: feature.name).map { holdout.columns[$0] } }
        var latencies: [Double] = []
        var probe = Probe(requests: 0, errors: 0, mismatches: 0, latencyP99Ms: 0)
        probe.compared = expected != nil
        for row in 0..<holdout.rowCount where probe.requests < probeRows {
            var inputs: [[String: Any]] = []
            var complete = true
            for (feature, column) in zip(features, columns) {
                guard let column else {
                    complete = false
                    break
                }
                switch column {
                case .numeric(let values):
                    guard values[row].isFinite else {
                        complete = false
                        break
                    }
                    inputs.append(["name": feature.name, "datatype": "FP64", "shape": [1], "data": [values[row]]])
                case .categorical(let codes, let levels):
                    guard codes[row] >= 0 else {
                        complete = false
                        break
                    }
                    inputs.append(["name": feature.name, "datatype": "BYTES", "shape": [1], "data": [levels[Int(codes[row])]]])
                }
            }
            guard complete else { continue }  // rows with missing values cannot be sent as JSON numbers
            if server.servesGRPC && !probe.grpcChecked {
                probe.grpcChecked = true
                probe.grpcMatched = try Self.grpcAnswerMatches(
                    model: model, version: version, row: row, features: features, columns: columns, expected: expected, server: server)
            }
            let body = try JSONSerialization.data(withJSONObject: [
                "id": "verify-\(row)", "inputs": inputs, "outputs": [["name": "predict"]],
            ])
            let answer = try server.infer(model: model, version: version, body: body)
            probe.requests += 1
            latencies.append(answer.seconds * 1000)
            guard answer.status == 200 else {
                probe.errors += 1
                continue
            }
            let output = (answer.json["outputs"] as? [[String: Any]])?.first { $0["name"] as? String == "predict" }
            let data = output?["data"] as? [Any]
            if let labels = expected?.labels {
                if (data?.first as? String) != labels[row] { probe.mismatches += 1 }
            } else if let values = expected?.values {
                let value = (data?.first as? Double) ?? (data?.first as? Int).map(Double.init)
                // JSON carries the shortest round-trip text; allow for the last bit of a parser's rounding.
                if value.map({ abs($0 - values[row]) <= 1e-12 * max(1, abs(values[row])) }) != true { probe.mismatches += 1 }
            }
        }
        latencies.sort()
        if !latencies.isEmpty {
            probe.latencyP99Ms = latencies[min(latencies.count - 1, Int((Double(latencies.count) * 0.99).rounded(.up)) - 1)]
        }
        return probe
    }

    /// Sends row `row` as one `ModelInfer` over gRPC (typed contents) and compares the answer with the model file's.
    static func grpcAnswerMatches(
        model: String, version: String, row: Int, features: [FeaturePipeline.Feature], columns: [Column?], expected: Predictions?,
        server: any ServingTarget
    ) throws -> Bool {
        var request = Inference_ModelInferRequest()
        request.modelName = model
        request.modelVersion = version
        request.id = "verify-grpc-\(row)"
        for (feature, column) in zip(features, columns) {
            var input = Inference_ModelInferRequest.InferInputTensor()
            input.name = feature.name
            input.shape = [1]
            switch column {
            case .numeric(let values)?:
                input.datatype = "FP64"
                input.contents.fp64Contents = [values[row]]
            case .categorical(let codes, let levels)?:
                input.datatype = "BYTES"
                input.contents.bytesContents = [Data(levels[Int(codes[row])].utf8)]
            case nil:
                return false
            }
            request.inputs.append(input)
        }
        var output = Inference_ModelInferRequest.InferRequestedOutputTensor()
        output.name = "predict"
        request.outputs = [output]
        let answer = try server.inferOverGRPC(request)
        guard let predict = answer.outputs.first(where: { $0.name == "predict" }) else { return false }
        guard let expected else { return true }  // answered by the model's own server: an answer is what is checked
        if let labels = expected.labels {
            return predict.contents.bytesContents.first.map { String(decoding: $0, as: UTF8.self) } == labels[row]
        }
        guard let value = predict.contents.fp64Contents.first, let wanted = expected.values?[row] else { return false }
        return value == wanted  // binary on the wire: bit for bit
    }
}
