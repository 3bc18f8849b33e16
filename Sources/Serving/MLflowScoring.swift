import ExternalModels
import Foundation
import Hummingbird
import Learning
import NIOCore

/// The tabular protocols users migrate from: MLflow's scoring (`mlflow models serve`: `POST /invocations` with a pandas
/// `dataframe_split` or `dataframe_records` body, `instances`, `inputs`, or a CSV body) and KServe's V1 protocol
/// (`/v1/models/{m}:predict` with `instances`), both answered with `{"predictions": [...]}` (labels, or numbers for
/// regression) by the model's default route.
enum MLflowScoring {
    /// The body forms `/invocations` reads.
    static let bodyForms = "\"dataframe_split\", \"dataframe_records\", \"instances\" or \"inputs\" (or a text/csv body with a header row)"

    static func invocations(_ repository: ModelRepository, _ request: Request, _ context: BasicRequestContext, bodyLimit: Int,
                            metrics: ServerMetrics) async -> Response {
        let named = request.uri.queryParameters.get("model").map { String($0) }
        let csv = request.headers[.contentType].map { $0.lowercased().hasPrefix("text/csv") } ?? false
        return await score(repository, request, bodyLimit: bodyLimit, metrics: metrics) { () throws(InferenceError) -> String in
            let models = repository.models
            if let named { return named }
            if models.count == 1 { return models[0] }
            let loaded = models.isEmpty ? "no model is loaded" : "several models are loaded (\(models.joined(separator: ", ")))"
            throw InferenceError(.badRequest, "\(loaded): name one with ?model=NAME")
        } rows: { body, file throws in
            if csv { return try CSVReader.read(Data(body.readableBytesView), source: "request", types: file.columnTypes) }
            guard let json = JSON.parse(Data(body.readableBytesView)), case .object = json else {
                throw InferenceError(.badRequest, "the body must be a JSON object with \(bodyForms)")
            }
            return try rows(json, model: file)
        }
    }

    /// `POST /v1/models/{m}:predict`: `{"instances": [...]}`, rows as lists in feature order or objects by feature name.
    static func v1Predict(_ repository: ModelRepository, _ request: Request, model: String, bodyLimit: Int,
                          metrics: ServerMetrics) async -> Response {
        await score(repository, request, bodyLimit: bodyLimit, metrics: metrics) { () throws(InferenceError) -> String in
            model
        } rows: { body, file throws in
            guard let json = JSON.parse(Data(body.readableBytesView)), case .object = json,
                  case .array(let instances)? = json["instances"] else {
                throw InferenceError(.badRequest, "the body must be {\"instances\": [...]}: rows as lists in feature order "
                    + "(\(file.pipeline.features.map(\.name).joined(separator: ", "))) or objects by feature name")
            }
            return try table(instances, key: "instances", model: file)
        }
    }

    /// Reads the body, finds the model, predicts the rows its body gives, answers `{"predictions": [...]}`.
    private static func score(_ repository: ModelRepository, _ request: Request, bodyLimit: Int, metrics: ServerMetrics,
                              model name: () throws(InferenceError) -> String,
                              rows: (ByteBuffer, ModelFile) throws -> Dataset) async -> Response {
        let started = ContinuousClock.now
        var model = "", version = ""
        let response: Response
        do {
            model = try name()
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: bodyLimit) } catch is NIOTooManyBytesError {
                throw InferenceError.bodyTooLarge(limit: bodyLimit)
            }
            guard let loaded = repository.resolve(model: model) else {
                throw InferenceError(.notFound, InferenceServer.notFoundMessage(model, nil, repository))
            }
            version = loaded.version
            let predictions = try await loaded.predict(try rows(body, loaded.file))
            var writer = JSONWriter()
            writer.raw("{\"predictions\":")
            if let labels = predictions.labels { writer.strings(labels) } else { writer.numbers(predictions.values ?? []) }
            writer.raw("}")
            response = Reply.json(ByteBuffer(bytes: writer.bytes), source: loaded.source).response
        } catch {
            response = InferenceServer.response(for: error)
        }
        metrics.record(requested: model, in: repository, version: version.isEmpty ? nil : version, status: Int(response.status.code),
                       seconds: seconds(since: started))
        return response
    }

    /// Rows given as a list: each a list of values in the model's feature order, or an object of feature: value.
    static func table(_ items: [JSON], key: String, model: ModelFile) throws(InferenceError) -> Dataset {
        let features = model.pipeline.features
        var columns: [String: [JSON]] = [:]
        for (index, item) in items.enumerated() {
            switch item {
            case .array(let values):
                guard values.count == features.count else {
                    throw InferenceError(.badRequest, "\"\(key)\": row \(index) has \(values.count) values; a row as a list needs "
                        + "\(features.count), in the feature order (\(features.map(\.name).joined(separator: ", ")))")
                }
                for (feature, value) in zip(features, values) { columns[feature.name, default: []].append(value) }
            case .object(let members):
                for feature in features { columns[feature.name, default: []].append(members.first { $0.0 == feature.name }?.1 ?? .null) }
            default:
                throw InferenceError(.badRequest, "\"\(key)\": row \(index) must be a list of values in feature order or an object of "
                    + "feature: value")
            }
        }
        if items.isEmpty { for feature in features { columns[feature.name] = [] } }
        return try dataset(columns, model: model)
    }

    /// The model's feature columns from any of MLflow's JSON body forms; other columns are ignored.
    static func rows(_ json: JSON, model: ModelFile) throws(InferenceError) -> Dataset {
        var columns: [String: [JSON]] = [:]
        let features = model.pipeline.features
        if case .array(let instances)? = json["instances"] {
            return try table(instances, key: "instances", model: model)
        } else if let inputs = json["inputs"] {
            switch inputs {
            case .array(let list): return try table(list, key: "inputs", model: model)
            case .object(let members):
                // A column dict: feature: [values].
                for (name, value) in members {
                    guard case .array(let values) = value else {
                        throw InferenceError(.badRequest, "\"inputs\": column '\(name)' must be a list of values")
                    }
                    columns[name] = values
                }
                let counts = Set(features.compactMap { columns[$0.name]?.count })
                guard counts.count <= 1 else {
                    throw InferenceError(.badRequest, "\"inputs\": the columns must have the same number of values (found "
                        + "\(counts.sorted().map(String.init).joined(separator: ", ")))")
                }
                return try dataset(columns, model: model)
            default:
                throw InferenceError(.badRequest, "\"inputs\" must be a list of rows or an object of column: [values]")
            }
        } else if let split = json["dataframe_split"] {
            guard case .array(let names)? = split["columns"], case .array(let data)? = split["data"] else {
                throw InferenceError(.badRequest, "\"dataframe_split\" needs \"columns\" (a list of names) and \"data\" (a list of rows)")
            }
            let columnNames = names.map { name -> String in if case .string(let text) = name { return text } else { return "" } }
            for (index, row) in data.enumerated() {
                guard case .array(let values) = row, values.count == columnNames.count else {
                    throw InferenceError(.badRequest, "\"dataframe_split\": row \(index) must be a list of \(columnNames.count) values, "
                        + "one per column")
                }
                for (name, value) in zip(columnNames, values) { columns[name, default: []].append(value) }
            }
        } else if case .array(let records)? = json["dataframe_records"] {
            for (index, record) in records.enumerated() {
                guard case .object(let members) = record else {
                    throw InferenceError(.badRequest, "\"dataframe_records\": record \(index) must be an object of column: value")
                }
                for feature in features {
                    columns[feature.name, default: []].append(members.first { $0.0 == feature.name }?.1 ?? .null)
                }
            }
        } else {
            throw InferenceError(.badRequest, "the body must have \(bodyForms)")
        }
        return try dataset(columns, model: model)
    }

    /// The model's feature columns from JSON values by column name; every feature must be there.
    private static func dataset(_ columns: [String: [JSON]], model: ModelFile) throws(InferenceError) -> Dataset {
        let features = model.pipeline.features
        let missing = features.filter { columns[$0.name] == nil }.map(\.name)
        guard missing.isEmpty else {
            throw InferenceError(.badRequest, "missing column\(missing.count == 1 ? "" : "s") "
                + "\(missing.map { "'\($0)'" }.joined(separator: ", ")) (the model needs: \(features.map(\.name).joined(separator: ", ")))")
        }
        var result: [Column] = []
        for feature in features {
            let values = columns[feature.name]!
            switch feature.kind {
            case .numeric: result.append(.numeric(try InferenceRequest.numbers(values, input: "column '\(feature.name)'")))
            case .categorical: result.append(try InferenceRequest.categories(values, input: "column '\(feature.name)'"))
            }
        }
        return Dataset(names: features.map(\.name), columns: result, source: "request")
    }
}
