import Foundation
import Learning
import Serving
import LoopbackHTTP
import StagecraftTesting
import Testing

/// Models trained on the example data, and a live server on 127.0.0.1 for the tests.
enum Models {
    static func train(_ name: String, target: String, task: LearningTask, algorithm: AlgorithmName) throws -> (ModelFile, Dataset) {
        let folder = Fixtures.packageRoot + "/data/\(name)"
        let train = try CSVReader.read(Data(contentsOf: URL(fileURLWithPath: folder + "/train.csv")), source: "train.csv")
        let test = try CSVReader.read(Data(contentsOf: URL(fileURLWithPath: folder + "/test.csv")), source: "test.csv")
        let outcome = try Training.run(TrainingRequest(task: task, target: target, algorithm: algorithm), train: train, test: test)
        let record = BuildRecord(digest: String(repeating: "a", count: 64), model: name, data: [:], parameters: [:], tool: "test")
        return (outcome.modelFile(task: task, target: target, build: record), test)
    }

    static let penguins = try! train("penguins", target: "species", task: .multiclassClassification, algorithm: .gradientBoosting)
    static let breastCancer = try! train("breast-cancer", target: "diagnosis", task: .binaryClassification, algorithm: .logisticRegression)
}

/// Per-feature tensors for rows of `data`, as a client sends them.
func perFeatureBody(_ model: ModelFile, _ data: Dataset, rows: Range<Int>, id: String? = nil) -> Data {
    let inputs: [[String: Any]] = model.pipeline.features.map { feature in
        let column = data.column(feature.name)!
        let values: [Any] = rows.map { row in
            switch column {
            case .numeric(let values): return values[row].isNaN ? NSNull() : values[row] as Any
            case .categorical(let codes, let levels): return codes[row] < 0 ? NSNull() : levels[Int(codes[row])] as Any
            }
        }
        return ["name": feature.name, "shape": [rows.count], "datatype": feature.kind == .numeric ? "FP64" : "BYTES", "data": values]
    }
    var body: [String: Any] = ["inputs": inputs]
    if let id { body["id"] = id }
    return try! JSONSerialization.data(withJSONObject: body)
}

@Suite struct InferenceRequestTests {
    @Test func bothLayoutsGiveTheSamePredictions() throws {
        let (model, test) = Models.breastCancer
        let perFeature = try InferenceRequest.decode(perFeatureBody(model, test, rows: 0..<5), for: model)
        // The same rows as one [5, 30] tensor, nested.
        let matrix: [[Double]] = (0..<5).map { row in
            model.pipeline.features.map { feature in if case .numeric(let values) = test.column(feature.name)! { return values[row] } else { return 0 } }
        }
        let body = try JSONSerialization.data(withJSONObject: ["inputs": [["name": "input-0", "shape": [5, 30], "datatype": "FP32", "data": matrix]]])
        let single = try InferenceRequest.decode(body, for: model)
        #expect(try model.predict(perFeature.rows) == model.predict(single.rows))
        #expect(try model.predict(perFeature.rows) == model.predict(test.rows(Array(0..<5))))
    }

    static let badRequests: [(String, String)] = [
        ("{", "the body is not valid JSON (expected {\"inputs\": [{\"name\", \"shape\", \"datatype\", \"data\"}, ...]})"),
        ("[]", "the body must be a JSON object with \"inputs\""),
        (#"{"inputs": []}"#, "\"inputs\" must be a non-empty list of tensors"),
        (#"{"id": 7, "inputs": []}"#, "\"id\" must be a string"),
        (#"{"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}"#, "input 0 has no \"name\""),
        (#"{"inputs": [{"name": "x", "shape": "1", "datatype": "FP64", "data": [1]}]}"#, "input 'x': \"shape\" must be a list of non-negative integers, such as [2] or [2, 1]"),
        (#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FLOAT", "data": [1]}]}"#, "input 'x': \"datatype\" must be one of BOOL, INT8…INT64, UINT8…UINT64, FP16, FP32, FP64, BYTES"),
        (#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64"}]}"#, "input 'x' has no \"data\""),
        (#"{"inputs": [{"name": "island", "shape": [2], "datatype": "BYTES", "data": ["Dream"]}]}"#, "input 'island': shape [2] needs 2 values, \"data\" has 1"),
        (#"{"inputs": [{"name": "wings", "shape": [1], "datatype": "FP64", "data": [2]}]}"#, "unknown input 'wings' (expected one of: island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex, year)"),
        (#"{"inputs": [{"name": "island", "shape": [1], "datatype": "BYTES", "data": ["Dream"]}]}"#, "missing inputs 'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g', 'sex', 'year' (the model needs one tensor per feature: island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex, year)"),
        (#"{"inputs": [{"name": "island", "shape": [1, 2], "datatype": "BYTES", "data": [["Dream", "Biscoe"]]}]}"#, "input 'island': shape [1, 2] must be [N] or [N, 1]"),
        (#"{"inputs": [{"name": "x", "shape": [1, 7], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6, 7]}]}"#, "input 'x': a single [N, F] tensor needs a model whose features are all numeric; send one tensor per feature (island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex, year)"),
        (#"{"inputs": [{"name": "island", "shape": [1], "datatype": "BYTES", "data": ["Dream"]}], "outputs": [{"name": "logits"}]}"#, "unknown output 'logits' (expected one of: predict, predict_proba)"),
    ]

    @Test(arguments: badRequests.indices)
    func badRequestsSayWhatIsWrong(_ index: Int) {
        let (body, message) = Self.badRequests[index]
        let error = #expect(throws: InferenceError.self) { try InferenceRequest.decode(Data(body.utf8), for: Models.penguins.0) }
        #expect(error?.message == message)
        #expect(error?.kind == .badRequest)
    }

    @Test func numbersAreReadExactly() throws {
        // Values that Foundation's parser on Linux reads as a neighbouring double, in one [1, 30] row.
        let tricky = [1.3842117956158007e-06, 4.0288542599541655e-07, 0.9813214368903036, 39.1, 1e-300, -0.0]
        let values = (0..<30).map { tricky[$0 % tricky.count] }
        let body = #"{"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": ["# + values.map { "\($0)" }.joined(separator: ",") + "]}]}"
        let model = Models.breastCancer.0
        let decoded = try InferenceRequest.decode(Data(body.utf8), for: model)
        #expect(decoded.rows.columns == values.map { Column.numeric([$0]) })
        let infinite = #expect(throws: InferenceError.self) {
            try InferenceRequest.decode(Data(body.replacingOccurrences(of: "39.1", with: "1e999").utf8), for: model)
        }
        #expect(infinite?.message == "input 'x': value 3 is not finite")
    }

    @Test func wrongValuesInAFeature() throws {
        let (model, _) = Models.penguins
        func body(_ overrides: [String: (String, Any)]) throws -> Data {
            let inputs: [[String: Any]] = model.pipeline.features.map { feature in
                let (datatype, value) = overrides[feature.name] ?? (feature.kind == .numeric ? "FP64" : "BYTES", feature.kind == .numeric ? 1.0 : "Dream")
                return ["name": feature.name, "shape": [1], "datatype": datatype, "data": [value]]
            }
            return try JSONSerialization.data(withJSONObject: ["inputs": inputs])
        }
        let text = #expect(throws: InferenceError.self) { try InferenceRequest.decode(try body(["bill_length_mm": ("FP64", "long")]), for: model) }
        #expect(text?.message == "input 'bill_length_mm': row 0 holds \"long\", not a number")
        let bytes = #expect(throws: InferenceError.self) { try InferenceRequest.decode(try body(["bill_length_mm": ("BYTES", "41.2")]), for: model) }
        #expect(bytes?.message == "input 'bill_length_mm': feature 'bill_length_mm' is numeric, so the datatype must be numeric (FP32, FP64, INT*, BOOL), not BYTES")
        // null is a missing value (imputed), and an unknown category is answered.
        let decoded = try InferenceRequest.decode(try body(["sex": ("BYTES", NSNull()), "island": ("BYTES", "Atlantis")]), for: model)
        #expect(try model.predict(decoded.rows).labels?.count == 1)
    }
}

/// The real server on 127.0.0.1, called with curl.
@Suite(.serialized) struct LiveServerTests {
    func withServer(bodyLimit: Int = 8 << 20, _ body: (Int, ModelRepository) async throws -> Void) async throws {
        let repository = ModelRepository()
        let source = String(repeating: "1", count: 40)
        repository.load(LoadedVersion(model: "penguins", version: String(repeating: "ab", count: 32), source: source, file: Models.penguins.0))
        repository.load(LoadedVersion(model: "breast-cancer", version: String(repeating: "cd", count: 32), source: source, file: Models.breastCancer.0))
        let port = try Loopback.freePort()
        var server = InferenceServer(environment: "test", repository: repository, port: port, bodyLimit: bodyLimit)
        server.adminToken = "secret"
        server.loader = { model, version in
            guard model == "penguins", version.hasPrefix("efefefefefef") else { throw InferenceError(.notFound, "no build \(version)") }
            return LoadedVersion(model: model, version: String(repeating: "ef", count: 32), source: String(repeating: "3", count: 40), file: Models.penguins.0)
        }
        let task = Task(executorPreference: ServerExecutor.shared) { [server] in try await server.run(handleSignals: false) }
        defer { task.cancel() }
        try await offPool { try Loopback.waitForListener(port: port) }
        try await body(port, repository)
    }

    struct Reply: @unchecked Sendable {
        var status: Int
        var headers: String
        var json: [String: Any]
        var raw: String

        /// The numbers of the output tensor `name`, read exactly from the text (Foundation's JSON parser on
        /// Linux rounds some doubles to a neighbour).
        func exactData(of name: String) -> [Double]? {
            guard let marker = raw.range(of: "\"name\":\"\(name)\""),
                  let open = raw.range(of: "\"data\":[", range: marker.upperBound..<raw.endIndex),
                  let close = raw.range(of: "]", range: open.upperBound..<raw.endIndex) else { return nil }
            return raw[open.upperBound..<close.lowerBound].split(separator: ",").compactMap { Double($0) }
        }
    }

    func curl(_ port: Int, _ path: String, post body: Data? = nil, token: String? = nil) async throws -> Reply {
        try await offPool { try Self.curlBlocking(port, path, post: body, token: token) }
    }

    static func curlBlocking(_ port: Int, _ path: String, post body: Data?, token: String? = nil) throws -> Reply {
        let scratch = try ScratchDirectory()
        var arguments = ["-s", "-D", scratch.appending("headers"), "-o", scratch.appending("body"), "-w", "%{http_code}", "http://127.0.0.1:\(port)\(path)"]
        if let body {
            try body.write(to: URL(fileURLWithPath: scratch.appending("request")))
            arguments += ["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", "@" + scratch.appending("request")]
        }
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        let output = try ProcessRunner.run("curl", arguments)
        let data = (try? Data(contentsOf: URL(fileURLWithPath: scratch.appending("body")))) ?? Data()
        return Reply(status: Int(output.stdout) ?? 0, headers: (try? scratch.read("headers")) ?? "",
                     json: (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:], raw: String(decoding: data, as: UTF8.self))
    }

    @Test func everyEndpoint() async throws {
        try await withServer { port, _ in
            #expect(try await curl(port, "/v2/health/live").status == 200)
            #expect(try await curl(port, "/v2/health/ready").status == 200)
            let server = try await curl(port, "/v2")
            #expect(server.json["name"] as? String == "stagecraft")
            let metadata = try await curl(port, "/v2/models/penguins")
            #expect(metadata.status == 200)
            #expect((metadata.json["inputs"] as? [[String: Any]])?.map { $0["name"] as? String } == Models.penguins.0.pipeline.features.map(\.name))
            #expect((metadata.json["inputs"] as? [[String: Any]])?.first?["datatype"] as? String == "BYTES")
            let version = String(repeating: "ab", count: 32)
            #expect(try await curl(port, "/v2/models/penguins/versions/\(version.prefix(12))").status == 200)
            #expect(try await curl(port, "/v2/models/penguins/ready").json["ready"] as? Bool == true)
            #expect(try await curl(port, "/v2/models/penguins/versions/\(version)/ready").status == 200)
            let unknown = try await curl(port, "/v2/models/whales")
            #expect(unknown.status == 404)
            #expect(unknown.json["error"] as? String == "no model 'whales' (loaded: breast-cancer, penguins)")
            let badVersion = try await curl(port, "/v2/models/penguins/versions/ffffffffffff")
            #expect(badVersion.status == 404)
            #expect(badVersion.json["error"] as? String == "model 'penguins' has no version 'ffffffffffff' (loaded: abababababab)")
        }
    }

    @Test func predictionsOverHTTPEqualTheModels() async throws {
        try await withServer { port, _ in
            for (name, (model, test)) in [("penguins", Models.penguins), ("breast-cancer", Models.breastCancer)] {
                let reply = try await curl(port, "/v2/models/\(name)/infer", post: perFeatureBody(model, test, rows: 0..<test.rowCount, id: "req-1"))
                #expect(reply.status == 200)
                #expect(reply.headers.lowercased().contains("stagecraft-source: \(String(repeating: "1", count: 40))"))
                #expect(reply.json["id"] as? String == "req-1")
                #expect((reply.json["model_version"] as? String)?.count == 64)
                let outputs = try #require(reply.json["outputs"] as? [[String: Any]])
                let expected = try model.predict(test)
                #expect(outputs.first { $0["name"] as? String == "predict" }?["data"] as? [String] == expected.labels)
                #expect(outputs.map { $0["name"] as? String } == ["predict", "predict_proba"])
                #expect(reply.exactData(of: "predict_proba") == expected.probabilities)
            }
            // The [N, F] layout over HTTP answers the same as one tensor per feature.
            let (bc, bcTest) = Models.breastCancer
            let matrix = (0..<5).flatMap { row in bc.pipeline.features.map { feature -> Double in
                if case .numeric(let values) = bcTest.column(feature.name)! { return values[row] } else { return 0 } } }
            let single = try await curl(port, "/v2/models/breast-cancer/infer",
                                        post: Data((#"{"inputs": [{"name": "x", "shape": [5, 30], "datatype": "FP64", "data": ["# + matrix.map { "\($0)" }.joined(separator: ",") + "]}]}").utf8))
            #expect(single.exactData(of: "predict_proba") == (try bc.predict(bcTest.rows(Array(0..<5)))).probabilities)
            // Only the outputs asked for; an id is generated when none is sent.
            var body = try JSONSerialization.jsonObject(with: perFeatureBody(Models.penguins.0, Models.penguins.1, rows: 0..<2)) as! [String: Any]
            body["outputs"] = [["name": "predict"]]
            let reply = try await curl(port, "/v2/models/penguins/versions/abababababab/infer", post: try JSONSerialization.data(withJSONObject: body))
            #expect((reply.json["outputs"] as? [[String: Any]])?.map { $0["name"] as? String } == ["predict"])
            #expect((reply.json["id"] as? String)?.isEmpty == false)
        }
    }

    @Test func badRequestsAre400And404And413NeverA500() async throws {
        try await withServer(bodyLimit: 4096) { port, _ in
            let bad = try await curl(port, "/v2/models/penguins/infer", post: Data("{".utf8))
            #expect(bad.status == 400)
            #expect((bad.json["error"] as? String)?.hasPrefix("the body is not valid JSON") == true)
            let missing = try await curl(port, "/v2/models/nope/infer", post: Data("{}".utf8))
            #expect(missing.status == 404)
            let big = try await curl(port, "/v2/models/penguins/infer", post: Data(repeating: 32, count: 10_000))
            #expect(big.status == 413)
            #expect(big.json["error"] as? String == "the body is over the limit of 4096 bytes")
            // The server still answers afterwards.
            #expect(try await curl(port, "/v2/health/live").status == 200)
        }
    }

    @Test func requestsForWhatIsNotLoadedNeverMakeMetricSeries() async throws {
        try await withServer { port, _ in
            let (model, test) = Models.penguins
            let body = perFeatureBody(model, test, rows: 0..<1)
            try await offPool {
                let connection = try HTTPConnection(port: port)
                // 300 unknown model names (one 10 KB long), unknown versions of a loaded model, and MLflow's ?model=.
                for index in 0..<300 {
                    let name = index == 0 ? String(repeating: "x", count: 10_000) : "whale-\(index)"
                    #expect(try connection.send("POST", "/v2/models/\(name)/infer", body: body).status == 404)
                }
                for index in 0..<100 {
                    #expect(try connection.send("POST", "/v2/models/penguins/versions/\(String(format: "%012x", index + 1))/infer", body: body).status == 404)
                    #expect(try connection.send("POST", "/invocations?model=orca-\(index)", body: Data("{}".utf8)).status == 404)
                }
                #expect(try connection.send("POST", "/v2/models/penguins/infer", body: body).status == 200)
            }
            let metrics = try await curl(port, "/metrics").raw
            let requests = metrics.split(separator: "\n").filter { $0.hasPrefix("stagecraft_requests_total{") }
            // Everything unknown is counted under one fixed label; only the loaded model and its answering version have series.
            #expect(requests.contains("stagecraft_requests_total{model=\"_unknown\",version=\"\",status=\"404\",protocol=\"http\"} 400"), "\(requests)")
            #expect(requests.contains("stagecraft_requests_total{model=\"penguins\",version=\"abababababab\",status=\"200\",protocol=\"http\"} 1"), "\(requests)")
            #expect(requests.count <= 3, "\(requests)")
            #expect(!metrics.contains("whale") && !metrics.contains("orca") && !metrics.contains("xxxxxxxx"))
            #expect(metrics.utf8.count < 20_000)
        }
    }

    @Test func mlflowScoringGivesTheSamePredictions() async throws {
        try await withServer { port, _ in
            let (model, test) = Models.penguins
            let names = model.pipeline.features.map(\.name)
            let rows = (0..<10).map { row in names.map { test.column($0)!.text(at: row) } }
            func value(_ text: String, _ name: String) -> Any {
                text.isEmpty ? NSNull() : (model.pipeline.features.first { $0.name == name }!.kind == .numeric ? Double(text)! as Any : text)
            }
            let split: [String: Any] = ["dataframe_split": ["columns": names + ["species"], "data": rows.map { row in zip(row, names).map { value($0, $1) } + ["?"] }]]
            let records: [String: Any] = ["dataframe_records": rows.map { row in Dictionary(uniqueKeysWithValues: zip(names, row).map { ($0, value($1, $0)) }) }]
            let expected = try model.predict(test.rows(Array(0..<10))).labels
            for body in [split, records] {
                let reply = try await curl(port, "/invocations?model=penguins", post: try JSONSerialization.data(withJSONObject: body))
                #expect(reply.status == 200)
                #expect(reply.json["predictions"] as? [String] == expected)
            }
            let unnamed = try await curl(port, "/invocations", post: try JSONSerialization.data(withJSONObject: split))
            #expect(unnamed.status == 400)
            #expect(unnamed.json["error"] as? String == "several models are loaded (breast-cancer, penguins): name one with ?model=NAME")
            let missing = try await curl(port, "/invocations?model=penguins", post: Data(#"{"dataframe_split": {"columns": ["island"], "data": [["Dream"]]}}"#.utf8))
            #expect(missing.json["error"] as? String == "missing columns 'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g', 'sex', 'year' (the model needs: island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex, year)")
            #expect(try await curl(port, "/ping").status == 200)
            #expect(try await curl(port, "/health").status == 200)
        }
    }

    @Test func theRepositoryAPINeedsTheTokenAndLoadsIntoASlotWithoutTraffic() async throws {
        try await withServer { port, repository in
            let noToken = try await curl(port, "/v2/repository/index", post: Data())
            #expect(noToken.status == 401)
            #expect(noToken.json["error"] as? String == "the model repository API needs 'Authorization: Bearer <token>' with the token in .stagecraft/admin-token")
            #expect(try await curl(port, "/v2/repository/index", post: Data(), token: "wrong").status == 401)
            let index = try await curl(port, "/v2/repository/index", post: Data(), token: "secret")
            #expect((index.json["models"] as? [[String: Any]])?.count == 2)

            let slot = #"{"parameters": {"version": "efefefefefef", "default": false}}"#
            let loaded = try await curl(port, "/v2/repository/models/penguins/load", post: Data(slot.utf8), token: "secret")
            #expect(loaded.status == 200)
            #expect(repository.versions(of: "penguins")?.count == 2)
            // The slot takes no traffic, but answers on its own version path.
            let body = perFeatureBody(Models.penguins.0, Models.penguins.1, rows: 0..<1)
            #expect(try await curl(port, "/v2/models/penguins/infer", post: body).json["model_version"] as? String == String(repeating: "ab", count: 32))
            #expect(try await curl(port, "/v2/models/penguins/versions/efefefefefef/infer", post: body).json["model_version"] as? String == String(repeating: "ef", count: 32))
            let unknown = try await curl(port, "/v2/repository/models/penguins/load", post: Data(#"{"parameters": {"version": "999999999999"}}"#.utf8), token: "secret")
            #expect(unknown.status == 404)
            let unloaded = try await curl(port, "/v2/repository/models/penguins/unload", post: Data(#"{"parameters": {"version": "efefefefefef"}}"#.utf8), token: "secret")
            #expect(unloaded.status == 200)
            #expect(repository.versions(of: "penguins") == [String(repeating: "ab", count: 32)])
        }
    }

    @Test func everyBadRequestGetsItsStatusAndMessageOverHTTP() async throws {
        try await withServer(bodyLimit: 64 << 10) { port, _ in
            var cases = InferenceRequestTests.badRequests.map { ("/v2/models/penguins/infer", $0.0, 400, $0.1, nil as String?) }
            let row = String(decoding: perFeatureBody(Models.penguins.0, Models.penguins.1, rows: 0..<1), as: UTF8.self)
            cases += [
                ("/v2/models/whales/infer", row, 404, "no model 'whales' (loaded: breast-cancer, penguins)", nil),
                ("/v2/models/penguins/versions/ffffffffffff/infer", row, 404, "model 'penguins' has no version 'ffffffffffff' (loaded: abababababab)", nil),
                ("/v2/models/penguins/versions/abab/infer", row, 404, "model 'penguins' has no version 'abab' (loaded: abababababab)", nil),
                ("/v2/models/penguins/infer", String(repeating: " ", count: 70_000), 413, "the body is over the limit of 65536 bytes", nil),
                ("/v2/models/penguins/infer", row.replacingOccurrences(of: "\"FP64\"", with: "\"FP99\""), 400, "input 'bill_length_mm': \"datatype\" must be one of BOOL, INT8…INT64, UINT8…UINT64, FP16, FP32, FP64, BYTES", nil),
                ("/invocations", #"{"dataframe_records": [{"island": "Dream"}]}"#, 400, "several models are loaded (breast-cancer, penguins): name one with ?model=NAME", nil),
                ("/invocations?model=penguins", #"{"rows": []}"#, 400, "the body must have \"dataframe_split\", \"dataframe_records\", \"instances\" or \"inputs\" (or a text/csv body with a header row)", nil),
                ("/invocations?model=penguins", #"{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}"#, 400, "\"dataframe_split\": row 0 must be a list of 1 values, one per column", nil),
                ("/invocations?model=whales", #"{"dataframe_records": []}"#, 404, "no model 'whales' (loaded: breast-cancer, penguins)", nil),
                ("/invocations?model=penguins", #"{"instances": [[1]]}"#, 400, "\"instances\": row 0 has 1 values; a row as a list needs 7, in the feature order (island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex, year)", nil),
                ("/invocations?model=penguins", #"{"inputs": {"island": ["Dream"], "sex": ["male", "female"]}}"#, 400, "\"inputs\": the columns must have the same number of values (found 1, 2)", nil),
                ("/invocations?model=penguins", #"{"inputs": [7]}"#, 400, "\"inputs\": row 0 must be a list of values in feature order or an object of feature: value", nil),
                ("/v1/models/penguins:predict", #"{"rows": []}"#, 400, "the body must be {\"instances\": [...]}: rows as lists in feature order (island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex, year) or objects by feature name", nil),
                ("/v1/models/whales:predict", #"{"instances": []}"#, 404, "no model 'whales' (loaded: breast-cancer, penguins)", nil),
                ("/v1/models/penguins:explain", #"{"instances": []}"#, 404, "KServe V1 answers /v1/models/{model}:predict; 'penguins:explain' is not a predict path", nil),
                ("/v2/repository/index", "", 401, "the model repository API needs 'Authorization: Bearer <token>' with the token in .stagecraft/admin-token", nil),
                ("/v2/repository/models/penguins/load", "{}", 400, "the body must be {\"parameters\": {\"version\": \"<digest>\"}} (and optionally \"default\": false)", "secret"),
                ("/v2/repository/models/penguins/load", #"{"parameters": {"version": "efefefefefef", "default": "yes"}}"#, 400, "\"default\" must be true or false", "secret"),
                ("/v2/repository/models/whales/unload", "", 404, "no model 'whales' (loaded: breast-cancer, penguins)", "secret"),
            ]
            #expect(cases.count >= 25)
            for (path, body, status, message, token) in cases {
                let reply = try await curl(port, path, post: Data(body.utf8), token: token)
                #expect(reply.status == status, "\(path) \(body.prefix(60))")
                #expect(reply.json["error"] as? String == message, "\(path) \(body.prefix(60))")
            }
            // Nothing a client sent broke the server.
            #expect(try await curl(port, "/v2/health/live").status == 200)
        }
    }

    /// A binary tensor request for penguins' one row: the JSON header, then each input's raw bytes (FP64 little-endian,
    /// BYTES with 4-byte lengths), as tritonclient sends it; `edit` changes the inputs first.
    static func binaryPenguin(_ edit: (inout [(name: String, datatype: String, shape: [Int], bytes: [UInt8], size: String?)]) -> Void = { _ in },
                              extra: [UInt8] = [], header: String? = nil) -> (body: Data, header: String) {
        func fp64(_ value: Double) -> [UInt8] { withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } }
        func text(_ value: String) -> [UInt8] { withUnsafeBytes(of: UInt32(value.utf8.count).littleEndian) { Array($0) } + Array(value.utf8) }
        var inputs: [(name: String, datatype: String, shape: [Int], bytes: [UInt8], size: String?)] = [
            ("island", "BYTES", [1], text("Biscoe"), nil), ("bill_length_mm", "FP64", [1], fp64(45.2), nil),
            ("bill_depth_mm", "FP64", [1], fp64(14.8), nil), ("flipper_length_mm", "FP64", [1], fp64(212), nil),
            ("body_mass_g", "FP64", [1], fp64(5200), nil), ("sex", "BYTES", [1], text("female"), nil), ("year", "FP64", [1], fp64(2008), nil),
        ]
        edit(&inputs)
        let json = "{\"inputs\":[" + inputs.map { input in
            "{\"name\":\"\(input.name)\",\"datatype\":\"\(input.datatype)\",\"shape\":\(input.shape),\"parameters\":{\"binary_data_size\":\(input.size ?? String(input.bytes.count))}}"
        }.joined(separator: ",") + "],\"parameters\":{\"binary_data_output\":true}}"
        return (Data(json.utf8) + Data(inputs.flatMap(\.bytes)) + Data(extra), header ?? String(json.utf8.count))
    }

    @Test func binaryTensorsAreAnsweredInBinaryAndEqualTheJSONAnswers() async throws {
        try await withServer { port, _ in
            let (body, header) = Self.binaryPenguin()
            // The same row as JSON.
            let plainBody = #"{"inputs":[{"name":"island","datatype":"BYTES","shape":[1],"data":["Biscoe"]},{"name":"bill_length_mm","datatype":"FP64","shape":[1],"data":[45.2]},{"name":"bill_depth_mm","datatype":"FP64","shape":[1],"data":[14.8]},{"name":"flipper_length_mm","datatype":"FP64","shape":[1],"data":[212]},{"name":"body_mass_g","datatype":"FP64","shape":[1],"data":[5200]},{"name":"sex","datatype":"BYTES","shape":[1],"data":["female"]},{"name":"year","datatype":"FP64","shape":[1],"data":[2008]}]}"#
            try await offPool {
                let connection = try HTTPConnection(port: port)
                for path in ["/v2/models/penguins/infer", "/v2/models/penguins/infer?via=router"] {
                    let reply = try connection.send("POST", path, body: body, headers: ["Inference-Header-Content-Length": header])
                    #expect(reply.status == 200, "\(path): \(reply.text)")
                    #expect(reply.headers["content-type"] == "application/octet-stream")
                    let length = try #require(Int(reply.headers["inference-header-content-length"] ?? ""))
                    let head = try #require(try JSONSerialization.jsonObject(with: reply.body.prefix(length)) as? [String: Any])
                    let outputs = try #require(head["outputs"] as? [[String: Any]])
                    #expect(outputs.map { $0["data"] == nil } == [true, true])
                    let sizes = outputs.compactMap { ($0["parameters"] as? [String: Any])?["binary_data_size"] as? Int }
                    #expect(sizes.count == 2 && sizes[0] > 4 && sizes[1] == 3 * 8, "\(sizes)")
                    #expect(length + sizes.reduce(0, +) == reply.body.count)
                    // The same row as JSON gives the same label and the same probabilities, bit for bit.
                    let rest = Array(reply.body.dropFirst(length))
                    let label = String(decoding: rest[4..<sizes[0]], as: UTF8.self)
                    let probabilities = (0..<3).map { index in
                        Double(bitPattern: UInt64(littleEndian: rest.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: sizes[0] + index * 8, as: UInt64.self) }))
                    }
                    let plain = try connection.send("POST", "/v2/models/penguins/infer", body: Data(plainBody.utf8))
                    let plainOutputs = try #require(plain.json["outputs"] as? [[String: Any]])
                    #expect((plainOutputs[0]["data"] as? [String])?.first == label)
                    #expect(plainOutputs[1]["data"] as? [Double] == probabilities)
                }
            }
        }
    }

    @Test func everyBadBinaryRequestGetsItsStatusAndMessageOnBothPaths() async throws {
        try await withServer { port, _ in
            typealias Inputs = [(name: String, datatype: String, shape: [Int], bytes: [UInt8], size: String?)]
            let valid = Self.binaryPenguin()
            let cases: [(body: Data, header: String?, message: String)] = [
                (valid.body, "5000", "Inference-Header-Content-Length is 5000, but the body has \(valid.body.count) bytes: the JSON header must be within the body"),
                (valid.body, "abc", "Inference-Header-Content-Length must be a whole number of bytes, found 'abc'"),
                (valid.body, "-5", "Inference-Header-Content-Length must be a whole number of bytes, found '-5'"),
                (valid.body, "0", "Inference-Header-Content-Length is 0, but the body has \(valid.body.count) bytes: the JSON header must be within the body"),
                (valid.body, String(Int(valid.header)! - 3), "the body is not valid JSON (expected {\"inputs\": [{\"name\", \"shape\", \"datatype\", \"data\"}, ...]})"),
                (valid.body, nil, "the body is not valid JSON (expected {\"inputs\": [{\"name\", \"shape\", \"datatype\", \"data\"}, ...]})"),
                (Data(#"{"inputs":[{"name":"island","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":10}}]}"#.utf8), nil,
                 "input 'island' says binary_data_size but the request has no binary data (no Inference-Header-Content-Length header)"),
                (Self.binaryPenguin { $0[1].size = "-1" }.body, Self.binaryPenguin { $0[1].size = "-1" }.header,
                 "input 'bill_length_mm': binary_data_size must be a non-negative whole number"),
                (Self.binaryPenguin { $0[1].size = "1.5" }.body, Self.binaryPenguin { $0[1].size = "1.5" }.header,
                 "input 'bill_length_mm': binary_data_size must be a non-negative whole number"),
                (Self.binaryPenguin { $0[5].size = "800" }.body, Self.binaryPenguin { $0[5].size = "800" }.header,
                 "input 'sex': binary_data_size 800 runs past the binary data (18 of 60 bytes left)"),
                (Self.binaryPenguin { $0[1].bytes += [0, 0, 0, 0] }.body, Self.binaryPenguin { $0[1].bytes += [0, 0, 0, 0] }.header,
                 "input 'bill_length_mm': binary_data_size 12 is not a multiple of FP64's 8 bytes"),
                (Self.binaryPenguin { $0[1].shape = [2] }.body, Self.binaryPenguin { $0[1].shape = [2] }.header,
                 "input 'bill_length_mm': shape [2] needs 2 values, its binary data has 1 (8 bytes of FP64)"),
                (Self.binaryPenguin(extra: [1, 2, 3]).body, Self.binaryPenguin(extra: [1, 2, 3]).header,
                 "the binary data has 63 bytes, but the inputs' binary_data_size add up to 60"),
                (Self.binaryPenguin { $0[0].bytes = [100, 0, 0, 0] + Array("Biscoe".utf8) }.body, Self.binaryPenguin { $0[0].bytes = [100, 0, 0, 0] + Array("Biscoe".utf8) }.header,
                 "input 'island': BYTES element 0 is 100 bytes long, past the 6 bytes left of its binary data"),
                (Self.binaryPenguin { $0[0].bytes = [6, 0] }.body, Self.binaryPenguin { $0[0].bytes = [6, 0] }.header,
                 "input 'island': BYTES element 0's 4-byte length runs past its binary data"),
                (Self.binaryPenguin { $0[0].bytes += [1, 0, 0, 0, 65] }.body, Self.binaryPenguin { $0[0].bytes += [1, 0, 0, 0, 65] }.header,
                 "input 'island': its binary data holds more than the 1 BYTES elements its shape needs"),
                (Self.binaryPenguin { $0[0].shape = [2] }.body, Self.binaryPenguin { $0[0].shape = [2] }.header,
                 "input 'island': shape needs 2 BYTES elements, its binary data has 1"),
                (Self.binaryPenguin { $0[0].bytes = [2, 0, 0, 0, 0xff, 0xfe] }.body, Self.binaryPenguin { $0[0].bytes = [2, 0, 0, 0, 0xff, 0xfe] }.header,
                 "input 'island': BYTES element 0 is not UTF-8 text"),
                (Self.binaryPenguin { $0[1] = ("bill_length_mm", "BYTES", [1], [4, 0, 0, 0] + Array("45.2".utf8), nil) }.body,
                 Self.binaryPenguin { $0[1] = ("bill_length_mm", "BYTES", [1], [4, 0, 0, 0] + Array("45.2".utf8), nil) }.header,
                 "input 'bill_length_mm': feature 'bill_length_mm' is numeric, so the datatype must be numeric (FP32, FP64, INT*, BOOL), not BYTES"),
                (Self.binaryPenguin { $0[1].bytes = withUnsafeBytes(of: Double.infinity.bitPattern.littleEndian) { Array($0) } }.body,
                 Self.binaryPenguin { $0[1].bytes = withUnsafeBytes(of: Double.infinity.bitPattern.littleEndian) { Array($0) } }.header,
                 "input 'bill_length_mm': value 0 is not finite"),
                (Self.binaryPenguin { $0[2].datatype = "FP99" }.body, Self.binaryPenguin { $0[2].datatype = "FP99" }.header,
                 "input 'bill_depth_mm': \"datatype\" must be one of BOOL, INT8…INT64, UINT8…UINT64, FP16, FP32, FP64, BYTES"),
                (Data(#"{"inputs":[{"name":"island","datatype":"BYTES","shape":[1],"data":["Dream"],"parameters":{"binary_data_size":4}}]}"#.utf8) + Data([0, 0, 0, 0]),
                 String(#"{"inputs":[{"name":"island","datatype":"BYTES","shape":[1],"data":["Dream"],"parameters":{"binary_data_size":4}}]}"#.utf8.count),
                 "input 'island' has both \"data\" and binary_data_size: send its values one way"),
            ]
            #expect(cases.count >= 20)
            try await offPool {
                let connection = try HTTPConnection(port: port)
                for (body, header, message) in cases {
                    for path in ["/v2/models/penguins/infer", "/v2/models/penguins/infer?via=router"] {
                        let reply = try connection.send("POST", path, body: body, headers: header.map { ["Inference-Header-Content-Length": $0] } ?? [:])
                        #expect(reply.status == 400, "\(path) \(message)")
                        #expect(reply.json["error"] as? String == message, "\(path)")
                    }
                }
                #expect(try connection.send("GET", "/v2/health/live").status == 200)
            }
        }
    }

    /// Runs a Python client (its socket module, an independent HTTP client) that writes `wire` to the server in
    /// pieces (with a pause between them) and reads until the server closes; returns each answer's status and body.
    func rawExchange(_ port: Int, _ pieces: [String]) async throws -> [(status: Substring, body: Substring)] {
        let script = #"""
        import socket, sys, time, json
        port, pieces = int(sys.argv[1]), json.loads(sys.argv[2])
        s = socket.create_connection(("127.0.0.1", port))
        for piece in pieces:
            s.sendall(piece.encode("latin-1"))
            time.sleep(0.05)
        data = b""
        while True:
            part = s.recv(65536)
            if not part: break
            data += part
        while data:
            head, _, rest = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            length = int([l.split(b":")[1] for l in lines if l.lower().startswith(b"content-length")][0])
            print(lines[0].split(b" ")[1].decode(), rest[:length].decode())
            data = rest[length:]
        """#
        let wire = String(decoding: try JSONSerialization.data(withJSONObject: pieces), as: UTF8.self)
        let output = try await offPool { try ProcessRunner.run("python3", ["-c", script, String(port), wire]) }
        return output.stdout.split(separator: "\n").map { line in (status: line.prefix(3), body: line.dropFirst(4)) }
    }

    static func post(_ path: String, _ body: String, _ headers: String = "") -> String {
        "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    /// Infer requests are answered from the connection's bytes until one that is not (here a GET) hands the
    /// connection to the HTTP decoder and the router: pipelined in one write, the answers still come back in
    /// request order, and the router answers the infer requests after the hand-over the same way (a chunked body,
    /// a body over the limit, `Connection: close`).
    @Test func pipelinedRequestsAreAnsweredInOrderAcrossBothPaths() async throws {
        try await withServer(bodyLimit: 4096) { port, _ in
            let row = { (id: String) in String(decoding: perFeatureBody(Models.penguins.0, Models.penguins.1, rows: 0..<1, id: id), as: UTF8.self) }
            var chunked = "POST /v2/models/penguins/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            let body = Array(row("p5").utf8)
            for start in stride(from: 0, to: body.count, by: 100) {
                let piece = body[start..<min(start + 100, body.count)]
                chunked += String(piece.count, radix: 16) + "\r\n" + String(decoding: piece, as: UTF8.self) + "\r\n"
            }
            chunked += "0\r\n\r\n"
            let wire = Self.post("/v2/models/penguins/infer", row("p1")) + Self.post("/v2/models/penguins/infer", row("p2"), "connection: Keep-Alive\r\nStagecraft-Probe: 1\r\n")
                + "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n" + Self.post("/v2/models/penguins/infer", row("p4")) + chunked
                + Self.post("/v2/models/penguins/infer", String(repeating: " ", count: 5000)) + Self.post("/v2/models/breast-cancer/infer", "{", "Connection: close\r\n")
            let answers = try await rawExchange(port, [wire])
            #expect(answers.map(\.status) == ["200", "200", "200", "200", "200", "413", "400"], "\(answers)")
            guard answers.count == 7 else { return }
            #expect(answers[0].body.contains("\"id\":\"p1\""))
            #expect(answers[1].body.contains("\"id\":\"p2\""))
            #expect(answers[2].body.contains("\"live\""))
            #expect(answers[3].body.contains("\"id\":\"p4\""))
            #expect(answers[4].body.contains("\"id\":\"p5\""))
            #expect(answers[5].body.contains("the body is over the limit of 4096 bytes"))
            #expect(answers[6].body.contains("the body is not valid JSON"))
        }
    }

    /// 3,000 pipelined requests (2 MB) from a client that only starts reading after half a second: the server stops
    /// reading while its answers cannot be written, and every answer still arrives, in order.
    @Test func aClientThatReadsLateGetsEveryAnswerInOrder() async throws {
        try await withServer { port, _ in
            let script = #"""
            import socket, sys, threading, time
            port, body = int(sys.argv[1]), sys.argv[2]
            wire = b"".join(b"POST /v2/models/breast-cancer/infer HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body.replace("ID", str(i))), body.replace("ID", str(i)).encode()) for i in range(3000))
            s = socket.create_connection(("127.0.0.1", port))
            data = []
            def read():
                time.sleep(0.5)
                while True:
                    part = s.recv(65536)
                    if not part: break
                    data.append(part)
            reader = threading.Thread(target=read)
            reader.start()
            s.sendall(wire)
            time.sleep(1.0)
            s.shutdown(socket.SHUT_WR)
            reader.join(30)
            text = b"".join(data).decode()
            ids = [chunk.split('"', 1)[0] for chunk in text.split('{"id":"')[1:]]
            print(text.count("HTTP/1.1 200 OK"), ",".join(ids[:3]), ids == [str(i) for i in range(3000)])
            """#
            let body = String(decoding: perFeatureBody(Models.breastCancer.0, Models.breastCancer.1, rows: 0..<1, id: "ID"), as: UTF8.self)
            let output = try await offPool { try ProcessRunner.run("python3", ["-c", script, String(port), body]) }
            #expect(output.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "3000 0,1,2 True", "\(output.stdout) \(output.stderr)")
        }
    }

    /// A request that arrives in pieces (cut in its head and in its body) is answered once whole; the server closes
    /// after the answer to `Connection: close`.
    @Test func requestsArrivingInPiecesAreAnsweredWhole() async throws {
        try await withServer { port, _ in
            let first = Self.post("/v2/models/penguins/infer", String(decoding: perFeatureBody(Models.penguins.0, Models.penguins.1, rows: 0..<2, id: "a"), as: UTF8.self))
            let second = Self.post("/v2/models/breast-cancer/infer", String(decoding: perFeatureBody(Models.breastCancer.0, Models.breastCancer.1, rows: 0..<1, id: "b"), as: UTF8.self), "Connection: close\r\n")
            let cuts = [20, 70, first.utf8.count - 30]
            var pieces: [String] = []
            var last = first.startIndex
            for cut in cuts {
                let index = first.index(first.startIndex, offsetBy: cut)
                pieces.append(String(first[last..<index]))
                last = index
            }
            pieces.append(String(first[last...]) + String(second.prefix(10)))
            pieces.append(String(second.dropFirst(10)))
            let answers = try await rawExchange(port, pieces)
            #expect(answers.map(\.status) == ["200", "200"], "\(answers)")
            #expect(answers.first?.body.contains("\"id\":\"a\",") == true)
            #expect(answers.last?.body.contains("\"id\":\"b\",") == true)
        }
    }

    @Test func aSwitchOfTheDefaultVersionIsImmediate() async throws {
        try await withServer { port, repository in
            let other = String(repeating: "ef", count: 32)
            repository.load(LoadedVersion(model: "penguins", version: other, source: String(repeating: "2", count: 40), file: Models.penguins.0))
            let body = perFeatureBody(Models.penguins.0, Models.penguins.1, rows: 0..<1)
            let switched = try await curl(port, "/v2/models/penguins/infer", post: body)
            #expect(switched.json["model_version"] as? String == other)
            #expect(repository.unload(model: "penguins", version: String(other.prefix(12))))
            let back = try await curl(port, "/v2/models/penguins/infer", post: body)
            #expect(back.json["model_version"] as? String == String(repeating: "ab", count: 32))
        }
    }
}

/// Traffic splits and metrics, through the real server with many requests on one keep-alive connection.
@Suite(.serialized) struct TrafficTests {
    @Test func weightsHoldWithin3PercentOver10000RequestsAndIdsAreSticky() async throws {
        let repository = ModelRepository()
        let (model, _) = Models.penguins
        let stable = String(repeating: "ab", count: 32), canary = String(repeating: "cd", count: 32)
        repository.load(LoadedVersion(model: "penguins", version: stable, source: String(repeating: "1", count: 40), file: model))
        repository.load(LoadedVersion(model: "penguins", version: canary, source: String(repeating: "2", count: 40), file: model), makeDefault: false)
        try repository.setTraffic(model: "penguins", [(String(stable.prefix(12)), 90), (String(canary.prefix(12)), 10)])
        let port = try Loopback.freePort()
        let server = InferenceServer(environment: "test", repository: repository, port: port)
        let task = Task(executorPreference: ServerExecutor.shared) { try await server.run(handleSignals: false) }
        defer { task.cancel() }
        try await offPool { try Loopback.waitForListener(port: port) }
        try await offPool { try Self.drive(port: port, stable: stable, canary: canary) }
    }

    @Test func splitShadowCaptureAndMetricsAreTheSameOverGRPC() async throws {
        guard let python = Fixtures.clientsPython else {
            Issue.record(Comment(rawValue: Fixtures.clientsMissing))
            return
        }
        let repository = ModelRepository()
        let (model, _) = Models.penguins
        let stable = String(repeating: "ab", count: 32), canary = String(repeating: "cd", count: 32), shadow = String(repeating: "ef", count: 32)
        for (version, source) in [(stable, "1"), (canary, "2"), (shadow, "3")] {
            repository.load(LoadedVersion(model: "penguins", version: version, source: String(repeating: source, count: 40), file: model),
                            makeDefault: version == stable)
        }
        try repository.route(model: "penguins", defaultVersion: stable, traffic: [(stable, 90), (canary, 10)], shadow: shadow)
        let scratch = try ScratchDirectory()
        let port = try Loopback.freePort(), grpcPort = try Loopback.freePort()
        var server = InferenceServer(environment: "test", repository: repository, port: port)
        server.grpcPort = grpcPort
        server.capture = RequestCapture(directory: URL(fileURLWithPath: scratch.path))
        let task = Task(executorPreference: ServerExecutor.shared) { [server] in try await server.run(handleSignals: false) }
        defer { task.cancel() }
        try await offPool { try Loopback.waitForListener(port: port); try Loopback.waitForListener(port: grpcPort) }
        // 2,000 gRPC requests (1,000 ids, each twice), then the same ids over HTTP: the same version answers each id.
        let script = #"""
        import json, sys, numpy as np, requests, tritonclient.grpc as g
        http, grpc_address = sys.argv[1], sys.argv[2]
        row = {"island": "Biscoe", "bill_length_mm": 45.2, "bill_depth_mm": 14.8, "flipper_length_mm": 212.0, "body_mass_g": 5200.0, "sex": "female", "year": 2008.0}
        client = g.InferenceServerClient(url=grpc_address)
        inputs = []
        for name, value in row.items():
            tensor = g.InferInput(name, [1], "BYTES" if isinstance(value, str) else "FP64")
            tensor.set_data_from_numpy(np.array([value.encode() if isinstance(value, str) else value], dtype=np.object_ if isinstance(value, str) else np.float64))
            inputs.append(tensor)
        over_grpc, over_http = {}, {}
        for index in range(2000):
            id = f"request-{index % 1000}"
            version = client.infer("penguins", inputs, request_id=id).get_response().model_version
            if over_grpc.setdefault(id, version) != version: print("moved", id); sys.exit(1)
        body = {"inputs": [{"name": n, "datatype": "BYTES" if isinstance(v, str) else "FP64", "shape": [1], "data": [v]} for n, v in row.items()]}
        for id in over_grpc:
            over_http[id] = requests.post(f"http://{http}/v2/models/penguins/infer", json={**body, "id": id}).json()["model_version"]
        print(json.dumps({"grpc": over_grpc, "http": over_http}))
        """#
        let output = try await offPool { try ProcessRunner.run(python, ["-c", script, "127.0.0.1:\(port)", "127.0.0.1:\(grpcPort)"]) }
        #expect(output.status == 0, "\(output.stdout)\(output.stderr)")
        let answers = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: [String: String]])
        let overGRPC = try #require(answers["grpc"]), overHTTP = try #require(answers["http"])
        #expect(overGRPC.count == 1_000 && overGRPC == overHTTP, "the split is not the same over gRPC and HTTP")
        let canaryShare = Double(overGRPC.values.filter { $0 == canary }.count) / 1_000
        #expect(abs(canaryShare - 0.10) <= 0.03, "canary share \(canaryShare)")
        #expect(!overGRPC.values.contains(shadow))
        // Every gRPC request was captured, with the shadow's copy; and counted under protocol="grpc".
        server.capture?.flush()
        let text = try String(contentsOfFile: scratch.appending("penguins/capture-0.jsonl"), encoding: .utf8)
        let records = text.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(records.filter { $0["shadow"] == nil }.count == 3_000)
        #expect(records.filter { $0["shadow"] as? Bool == true && $0["version"] as? String == shadow }.count == 3_000)
        let metrics = try await offPool { try HTTPConnection(port: port).send("GET", "/metrics").text }
        var grpcCount = 0
        for line in metrics.split(separator: "\n") where line.hasPrefix("stagecraft_requests_total{model=\"penguins\"") && line.contains("protocol=\"grpc\"") {
            grpcCount += Int(line.split(separator: " ").last ?? "") ?? 0
        }
        #expect(grpcCount == 2_000)
    }

    static func drive(port: Int, stable: String, canary: String) throws {
        let (model, test) = Models.penguins
        let client = try HTTPConnection(port: port)
        let template = try JSONSerialization.jsonObject(with: perFeatureBody(model, test, rows: 0..<1)) as! [String: Any]
        var counts: [String: Int] = [:]
        var firstAnswer: [String: String] = [:]
        for index in 0..<10_000 {
            var body = template
            let id = "request-\(index % 5_000)"  // every id twice: the second answer must match the first
            body["id"] = id
            let response = try client.send("POST", "/v2/models/penguins/infer", body: try JSONSerialization.data(withJSONObject: body))
            #expect(response.status == 200)
            let version = try #require(response.json["model_version"] as? String)
            counts[version, default: 0] += 1
            if let first = firstAnswer[id] { #expect(first == version, "id \(id) moved") } else { firstAnswer[id] = version }
            #expect(response.headers["stagecraft-source"] == String(repeating: version == stable ? "1" : "2", count: 40))
        }
        let canaryShare = Double(counts[canary] ?? 0) / 10_000
        #expect(abs(canaryShare - 0.10) <= 0.03, "canary share \(canaryShare)")
        #expect(counts[stable]! + counts[canary]! == 10_000)
        // An explicit version bypasses the split.
        let pinned = try client.send("POST", "/v2/models/penguins/versions/\(canary.prefix(12))/infer", body: perFeatureBody(model, test, rows: 0..<1, id: "x"))
        #expect(pinned.json["model_version"] as? String == canary)

        let metrics = try client.send("GET", "/metrics").text
        #expect(metrics.contains("stagecraft_requests_total{model=\"penguins\",version=\"\(canary.prefix(12))\",status=\"200\",protocol=\"http\"} \(counts[canary]! + 1)"))
        #expect(metrics.contains("stagecraft_requests_total{model=\"penguins\",version=\"\(stable.prefix(12))\",status=\"200\",protocol=\"http\"} \(counts[stable]!)"))
        #expect(metrics.contains("# TYPE stagecraft_request_duration_seconds histogram"))
        #expect(metrics.contains("stagecraft_request_duration_seconds_count{model=\"penguins\",version=\"\(stable.prefix(12))\",status=\"200\",protocol=\"http\"} \(counts[stable]!)"))
        // Errors are counted too.
        _ = try client.send("POST", "/v2/models/penguins/infer", body: Data("{".utf8))
        #expect(try client.send("GET", "/metrics").text.contains("stagecraft_request_errors_total{model=\"penguins\",version=\"\",status=\"400\",protocol=\"http\"} 1"))
    }

    @Test func aSplitMustNameLoadedVersionsAndSumTo100() throws {
        let repository = ModelRepository()
        repository.load(LoadedVersion(model: "penguins", version: String(repeating: "ab", count: 32), source: "s", file: Models.penguins.0))
        let sum = #expect(throws: InferenceError.self) { try repository.setTraffic(model: "penguins", [("abababababab", 50)]) }
        #expect(sum?.message == "traffic weights of 'penguins' must be 0 to 100 and sum to 100")
        let unknown = #expect(throws: InferenceError.self) { try repository.setTraffic(model: "penguins", [("abababababab", 50), ("ffffffffffff", 50)]) }
        #expect(unknown?.message == "model 'penguins' has no loaded version 'ffffffffffff' to send traffic to")
    }
}

@Suite(.serialized) struct CaptureTests {
    func serve(_ capture: RequestCapture, _ requests: Int, shadow: Bool = false, probes: Int = 0) async throws {
        let repository = ModelRepository()
        repository.load(LoadedVersion(model: "penguins", version: String(repeating: "ab", count: 32), source: "s", file: Models.penguins.0))
        if shadow {
            let other = try Models.train("penguins", target: "species", task: .multiclassClassification, algorithm: .logisticRegression).0
            repository.load(LoadedVersion(model: "penguins", version: String(repeating: "cd", count: 32), source: "t", file: other), makeDefault: false)
            try repository.setShadow(model: "penguins", version: "cdcdcdcdcdcd")
        }
        let port = try Loopback.freePort()
        var server = InferenceServer(environment: "test", repository: repository, port: port)
        server.capture = capture
        let task = Task(executorPreference: ServerExecutor.shared) { [server] in try await server.run(handleSignals: false) }
        defer { task.cancel() }
        try await offPool { try Loopback.waitForListener(port: port) }
        try await offPool {
            let client = try HTTPConnection(port: port)
            for index in 0..<requests {
                let body = perFeatureBody(Models.penguins.0, Models.penguins.1, rows: (index % 60)..<(index % 60 + 2), id: "c\(index)")
                guard try client.send("POST", "/v2/models/penguins/infer", body: body).status == 200 else { throw LoopbackError(message: "not 200") }
            }
            for index in 0..<probes {
                let body = perFeatureBody(Models.penguins.0, Models.penguins.1, rows: index..<(index + 1), id: "verify-\(index)")
                let answer = try client.send("POST", "/v2/models/penguins/versions/abababababab/infer", body: body, headers: ["Stagecraft-Probe": "verify"])
                guard answer.status == 200 else { throw LoopbackError(message: "not 200") }
            }
        }
        capture.flush()
    }

    @Test func everyRequestIsCapturedAndFilesRotate() async throws {
        let scratch = try ScratchDirectory()
        let capture = RequestCapture(directory: URL(fileURLWithPath: scratch.path), samplePercent: 100, maxFileBytes: 4_096)
        try await serve(capture, 50)
        let folder = scratch.appending("penguins")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(files.count > 1)
        var records: [[String: Any]] = []
        for file in files {
            let text = try String(contentsOfFile: folder + "/" + file, encoding: .utf8)
            #expect(text.utf8.count <= 4_096)
            records += text.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        }
        #expect(records.count == 50)
        #expect(Set(records.compactMap { $0["id"] as? String }) == Set((0..<50).map { "c\($0)" }))
        let first = try #require(records.first { $0["id"] as? String == "c0" })
        #expect(first["version"] as? String == String(repeating: "ab", count: 32))
        let inputs = try #require(first["inputs"] as? [String: Any])
        #expect(inputs["island"] as? [String] == [0, 1].map { Models.penguins.1.column("island")!.text(at: $0) })
        let outputs = try #require(first["outputs"] as? [String: Any])
        #expect(outputs["predict"] as? [String] == (try Models.penguins.0.predict(Models.penguins.1.rows([0, 1]))).labels)
        #expect((first["latency_ms"] as? Double).map { $0 >= 0 } == true)
    }

    @Test func verificationProbesAreAnsweredButNotCaptured() async throws {
        let scratch = try ScratchDirectory()
        let capture = RequestCapture(directory: URL(fileURLWithPath: scratch.path))
        try await serve(capture, 5, probes: 20)
        let text = try String(contentsOfFile: scratch.appending("penguins/capture-0.jsonl"), encoding: .utf8)
        let ids = text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["id"] as? String }
        #expect(ids.sorted() == (0..<5).map { "c\($0)" }.sorted())
    }

    @Test func aShadowGetsACopyOfEachRequestAndOnlyItsAnswerIsRecorded() async throws {
        let scratch = try ScratchDirectory()
        let capture = RequestCapture(directory: URL(fileURLWithPath: scratch.path))
        try await serve(capture, 30, shadow: true)
        let text = try String(contentsOfFile: scratch.appending("penguins/capture-0.jsonl"), encoding: .utf8)
        let records = text.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let primary = records.filter { $0["shadow"] == nil }, shadows = records.filter { $0["shadow"] as? Bool == true }
        #expect(primary.count == 30)
        #expect(shadows.count == 30)
        #expect(Set(primary.compactMap { $0["version"] as? String }) == [String(repeating: "ab", count: 32)])
        #expect(Set(shadows.compactMap { $0["version"] as? String }) == [String(repeating: "cd", count: 32)])
        #expect(Set(shadows.compactMap { $0["id"] as? String }) == Set(primary.compactMap { $0["id"] as? String }))
    }

    @Test func aZeroSampleCapturesNothing() async throws {
        let scratch = try ScratchDirectory()
        try await serve(RequestCapture(directory: URL(fileURLWithPath: scratch.path), samplePercent: 0), 20)
        #expect(!FileManager.default.fileExists(atPath: scratch.appending("penguins")))
    }
}

@Suite(.serialized) struct FeedbackTests {
    @Test func labelsJoinPredictionsByIDAndGiveLiveMetricsPerVersion() async throws {
        let (model, test) = Models.breastCancer
        let repository = ModelRepository()
        let version = String(repeating: "ab", count: 32)
        repository.load(LoadedVersion(model: "breast-cancer", version: version, source: "s", file: model))
        let scratch = try ScratchDirectory()
        let port = try Loopback.freePort()
        var server = InferenceServer(environment: "test", repository: repository, port: port)
        server.feedback = LiveFeedback(directory: URL(fileURLWithPath: scratch.path))
        let task = Task(executorPreference: ServerExecutor.shared) { [server] in try await server.run(handleSignals: false) }
        defer { task.cancel() }
        try await offPool { try Loopback.waitForListener(port: port) }
        let truth = test.column("diagnosis")!
        let predicted = try model.predict(test).labels!
        try await offPool {
            let client = try HTTPConnection(port: port)
            for row in 0..<40 {
                guard try client.send("POST", "/v2/models/breast-cancer/infer", body: perFeatureBody(model, test, rows: row..<(row + 1), id: "r\(row)")).status == 200 else {
                    throw LoopbackError(message: "infer failed")
                }
            }
            // The truth for rows 0..<30, except rows 0..<5 labelled wrong on purpose; one unknown id.
            var items: [[String: Any]] = (0..<30).map { row in
                let label = truth.text(at: row)
                let wrong = model.classes!.first { $0 != label }!
                return ["id": "r\(row)", "label": row < 5 ? wrong : label]
            }
            items.append(["id": "nobody", "label": "M"])
            let answer = try client.send("POST", "/v2/models/breast-cancer/feedback", body: try JSONSerialization.data(withJSONObject: ["feedback": items]))
            #expect(answer.status == 200, "\(answer.text)")
            #expect(answer.json["accepted"] as? Int == 30)
            #expect(answer.json["unmatched"] as? [String] == ["nobody"])
            let expected = Double((0..<30).filter { row in (row < 5 ? model.classes!.first { $0 != truth.text(at: row) }! : truth.text(at: row)) == predicted[row] }.count) / 30
            let live = (answer.json["live"] as? [String: Any])?[version] as? [String: Any]
            #expect(live?["labels"] as? Double == 30)
            #expect(abs((live?["accuracy"] as? Double ?? -1) - expected) < 1e-12)
            // A label for the same id again matches nothing: each prediction is labelled once.
            let again = try client.send("POST", "/v2/models/breast-cancer/feedback", body: Data(#"{"id": "r7", "label": "B"}"#.utf8))
            #expect(again.json["accepted"] as? Int == 0)
            let metrics = try client.send("GET", "/metrics").text
            #expect(metrics.contains("stagecraft_live_metric{model=\"breast-cancer\",version=\"abababababab\",metric=\"accuracy\"} \(expected)"))
            #expect(metrics.contains("stagecraft_feedback_labels_total{model=\"breast-cancer\",version=\"abababababab\"} 30"))
            // Bad feedback is a 400 that says what is wrong; an unknown model a 404.
            #expect(try client.send("POST", "/v2/models/breast-cancer/feedback", body: Data(#"{"label": "B"}"#.utf8)).text.contains("no \\\"id\\\" string"))
            #expect(try client.send("POST", "/v2/models/breast-cancer/feedback", body: Data(#"{"id": "r1", "label": null}"#.utf8)).status == 400)
            #expect(try client.send("POST", "/v2/models/nope/feedback", body: Data(#"{"id": "r1", "label": "B"}"#.utf8)).status == 404)
        }
        // The labels are also kept as JSON Lines for monitoring.
        var lines: [Substring] = []
        for _ in 0..<100 where lines.count < 32 {
            lines = ((try? String(contentsOfFile: scratch.appending("breast-cancer.jsonl"), encoding: .utf8)) ?? "").split(separator: "\n")
            usleep(10_000)
        }
        #expect(lines.count == 32, "every label sent is kept: 30 matched, 'nobody', and r7 again")
    }
}
