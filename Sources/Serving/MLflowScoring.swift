import Foundation
import Hummingbird
import Learning
import NIOCore

/// MLflow's scoring protocol (`mlflow models serve`), for users migrating: `POST /invocations` with a pandas
/// `dataframe_split` or `dataframe_records` body, answered with `{"predictions": [...]}`.
enum MLflowScoring {
    static func invocations(_ repository: ModelRepository, _ request: Request, _ context: BasicRequestContext, bodyLimit: Int,
                            metrics: ServerMetrics) async -> Response {
        let started = ContinuousClock.now
        var model = "", version = ""
        let response: Response
        do {
            let models = repository.models
            if let named = request.uri.queryParameters.get("model") {
                model = named
            } else if models.count == 1 {
                model = models[0]
            } else {
                throw InferenceError(.badRequest, "\(models.isEmpty ? "no model is loaded" : "several models are loaded (\(models.joined(separator: ", ")))"): name one with ?model=NAME")
            }
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: bodyLimit) } catch is NIOTooManyBytesError {
                throw InferenceError.bodyTooLarge(limit: bodyLimit)
            }
            guard let json = JSON.parse(Data(body.readableBytesView)), case .object = json else {
                throw InferenceError(.badRequest, "the body must be a JSON object with \"dataframe_split\" or \"dataframe_records\"")
            }
            guard let loaded = repository.resolve(model: model) else {
                throw InferenceError(.notFound, InferenceServer.notFoundMessage(model, nil, repository))
            }
            version = loaded.version
            let predictions = try loaded.file.predict(try rows(json, model: loaded.file))
            var writer = JSONWriter()
            writer.raw("{\"predictions\":")
            if let labels = predictions.labels { writer.strings(labels) } else { writer.numbers(predictions.values ?? []) }
            writer.raw("}")
            response = Reply.json(ByteBuffer(bytes: writer.bytes), source: loaded.source).response
        } catch {
            response = InferenceServer.response(for: error)
        }
        metrics.record(model: repository.contains(model: model) ? model : nil, version: version.isEmpty ? nil : version,
                       status: Int(response.status.code), seconds: seconds(since: started))
        return response
    }

    /// The model's feature columns from a `dataframe_split` or `dataframe_records` body; other columns are ignored.
    static func rows(_ json: JSON, model: ModelFile) throws(InferenceError) -> Dataset {
        var columns: [String: [JSON]] = [:]
        let features = model.pipeline.features
        if let split = json["dataframe_split"] {
            guard case .array(let names)? = split["columns"], case .array(let data)? = split["data"] else {
                throw InferenceError(.badRequest, "\"dataframe_split\" needs \"columns\" (a list of names) and \"data\" (a list of rows)")
            }
            let columnNames = names.map { name -> String in if case .string(let text) = name { return text } else { return "" } }
            for (index, row) in data.enumerated() {
                guard case .array(let values) = row, values.count == columnNames.count else {
                    throw InferenceError(.badRequest, "\"dataframe_split\": row \(index) must be a list of \(columnNames.count) values, one per column")
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
            throw InferenceError(.badRequest, "the body must have \"dataframe_split\" or \"dataframe_records\"")
        }
        let missing = features.filter { columns[$0.name] == nil }.map(\.name)
        guard missing.isEmpty else {
            throw InferenceError(.badRequest, "missing column\(missing.count == 1 ? "" : "s") \(missing.map { "'\($0)'" }.joined(separator: ", ")) (the model needs: \(features.map(\.name).joined(separator: ", ")))")
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
