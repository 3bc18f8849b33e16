public import Foundation
public import Learning
public import Manifests
public import Registry

/// Charts as inline SVG drawn by the server: no script and no file from elsewhere is needed to read them.
public enum Charts {
    /// The PSI limit drawn when the environment sets none (`monitor.psi`).
    public static let defaultPSILimit = 0.2

    /// The limit `threshold` (an environment's `monitor.psi`) draws, and whether a PSI passes it.
    public static func psiLimit(_ threshold: Threshold?) -> (limit: Double, exceeded: (Double) -> Bool) {
        guard let threshold else { return (defaultPSILimit, { $0 > defaultPSILimit }) }
        return (threshold.value, { !threshold.holds($0) })
    }

    /// One bar per feature: its population stability index, red past `threshold` (default ``defaultPSILimit``), with the
    /// limit drawn as a dashed line and each feature's p-value (Kolmogorov–Smirnov or chi-squared) beside its bar.
    public static func drift(_ items: [FeatureDrift], threshold: Threshold?) -> String {
        let (limit, exceeds) = psiLimit(threshold)
        let scale = max(limit * 1.5, items.map(\.psi).max() ?? 0, 0.01)
        let height = items.count * 26 + 34
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 760 \(height)\" width=\"760\" height=\"\(height)\" role=\"img\" "
            + "aria-label=\"Population stability index per feature, limit \(GateResult.format(limit))\">"
        for (index, item) in items.enumerated() {
            let y = index * 26 + 10
            let width = Int(340 * item.psi / scale)
            let colour = exceeds(item.psi) ? "#c62f3f" : "#2e78a8"
            svg += "<text x=\"0\" y=\"\(y + 14)\" font-size=\"13\">\(Html.escape(String(item.name.prefix(22))))</text>"
            svg +=
                "<rect x=\"160\" y=\"\(y)\" width=\"\(max(width, 1))\" height=\"18\" fill=\"\(colour)\"><title>"
                + "\(Html.escape(item.name)): psi "
                + "\(GateResult.format(item.psi))</title></rect>"
            var label = "psi " + GateResult.format(item.psi)
            if let p = item.ksPValue ?? item.chiSquaredPValue { label += ", p " + GateResult.format(p) }
            svg += "<text x=\"\(166 + width)\" y=\"\(y + 14)\" font-size=\"12\">\(label)</text>"
        }
        let x = 160 + Int(340 * limit / scale)
        svg += "<line x1=\"\(x)\" x2=\"\(x)\" y1=\"4\" y2=\"\(items.count * 26 + 12)\" stroke=\"#222\" stroke-dasharray=\"4 3\"/>"
        svg += "<text x=\"\(x + 4)\" y=\"\(items.count * 26 + 28)\" font-size=\"11\">limit \(GateResult.format(limit))</text></svg>"
        return svg
    }

    /// One bar per live metric between 0 and 1 (accuracy, AUC, F1, precision, recall, R²).
    public static func live(_ metrics: [String: Double]) -> String {
        let shown = metrics.filter { ["accuracy", "auc", "f1", "precision", "recall", "r2"].contains($0.key) }.sorted { $0.key < $1.key }
        let height = shown.count * 26 + 10
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 760 \(height)\" width=\"760\" height=\"\(height)\" role=\"img\" "
            + "aria-label=\"Live metrics\">"
        for (index, metric) in shown.enumerated() {
            let y = index * 26 + 4
            let width = Int(400 * min(max(metric.value, 0), 1))
            svg +=
                "<text x=\"0\" y=\"\(y + 14)\" font-size=\"13\">\(metric.key)</text><rect x=\"160\" y=\"\(y)\" "
                + "width=\"\(width)\" height=\"18\" fill=\"#3a7d44\"/>"
            svg += "<text x=\"\(166 + width)\" y=\"\(y + 14)\" font-size=\"12\">\(GateResult.format(metric.value))</text>"
        }
        return svg + "</svg>"
    }

    /// A horizontal bar split by traffic weight, each part in its version's colour.
    public static func split(_ shares: [VersionShare], colours: VersionColours) -> String {
        var x = 0
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 100 6\" width=\"100\" height=\"6\" role=\"img\" "
            + "aria-label=\"Traffic split\">"
        for share in shares {
            svg += "<rect x=\"\(x)\" y=\"0\" width=\"\(share.weight)\" height=\"6\" fill=\"\(colours.colour(share.version))\"/>"
            x += share.weight
        }
        return svg + "</svg>"
    }
}

/// A version is one colour everywhere it appears. A model's versions take the palette's colours in the order they were
/// built, so that two versions of one model built one after the other never share one; a version the artifact store
/// does not hold takes one from its digest.
public struct VersionColours: Sendable, Codable {
    /// Ten colours told apart on white (Tableau's ten).
    static let palette = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    ]
    /// By full digest.
    public var byDigest: [String: String]

    /// Colours given by digest.
    public init(byDigest: [String: String] = [:]) { self.byDigest = byDigest }

    /// Colours for `builds`, each model's in the order they were built.
    public init(builds: [(model: String, digest: String, built: Date)]) {
        var byDigest: [String: String] = [:]
        for (_, versions) in Dictionary(grouping: builds, by: \.model) {
            for (index, version) in versions.sorted(by: { ($0.built, $0.digest) < ($1.built, $1.digest) }).enumerated() {
                byDigest[version.digest] = Self.palette[index % Self.palette.count]
            }
        }
        self.byDigest = byDigest
    }

    /// The colour of the version `digest` names.
    public func colour(_ digest: String) -> String {
        if let colour = byDigest[digest] { return colour }
        var hash: UInt32 = 2_166_136_261
        for byte in digest.prefix(12).utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return Self.palette[Int(hash % UInt32(Self.palette.count))]
    }
}

/// Text inside HTML or SVG markup and attribute values.
public enum Html {
    /// `text` with `&`, `<`, `>`, `"` and `'` written as entities.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }
}
