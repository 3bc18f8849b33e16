import Foundation
@testable import Learning
import Manifests
import Registry
import Testing

@testable import WebConsole

@Suite struct RenderingTests {
    /// `/metrics` as a Stagecraft server writes it (swift-prometheus' text format), two models, one error.
    static let metrics = """
        # TYPE stagecraft_requests_total counter
        stagecraft_requests_total{model="penguins",version="b912997a8196",status="200",protocol="v2"} 90
        stagecraft_requests_total{model="penguins",version="b912997a8196",status="400",protocol="v2"} 1
        stagecraft_requests_total{model="breast-cancer",version="b35c54cc93bb",status="200",protocol="grpc"} 9
        # TYPE stagecraft_request_errors_total counter
        stagecraft_request_errors_total{model="penguins",version="b912997a8196",status="400",protocol="v2"} 1
        # TYPE stagecraft_request_duration_seconds histogram
        stagecraft_request_duration_seconds_bucket{model="penguins",le="0.001"} 50
        stagecraft_request_duration_seconds_bucket{model="penguins",le="0.005"} 90
        stagecraft_request_duration_seconds_bucket{model="penguins",le="0.025"} 91
        stagecraft_request_duration_seconds_bucket{model="penguins",le="+Inf"} 91
        stagecraft_request_duration_seconds_bucket{model="breast-cancer",le="0.001"} 9
        stagecraft_request_duration_seconds_bucket{model="breast-cancer",le="0.005"} 9
        stagecraft_request_duration_seconds_bucket{model="breast-cancer",le="0.025"} 9
        stagecraft_request_duration_seconds_bucket{model="breast-cancer",le="+Inf"} 9
        stagecraft_request_duration_seconds_count{model="penguins"} 91
        stagecraft_requests_other_total 7

        """

    @Test func trafficFromMetrics() throws {
        let sample = TrafficSample.parse(Self.metrics)
        #expect(sample.requests == 100 && sample.errors == 1)
        #expect(sample.buckets[.infinity] == 100 && sample.buckets[0.005] == 99)
        let lifetime = sample.summary(since: nil)
        #expect(lifetime.requestsPerSecond == nil && lifetime.errorRate == 0.01 && lifetime.window == "time since the server started")
        // 99 of 100 answered within 5 ms: the 99th percentile's bucket.
        #expect(lifetime.p99Milliseconds == 5)

        let sampler = TrafficSampler()
        let start = Date()
        _ = sampler.record(environment: "qa", metrics: Self.metrics, at: start)
        let later = Self.metrics.replacingOccurrences(of: "status=\"200\",protocol=\"v2\"} 90", with: "status=\"200\",protocol=\"v2\"} 110")
            .replacingOccurrences(of: "le=\"+Inf\"} 91", with: "le=\"+Inf\"} 111").replacingOccurrences(of: "le=\"0.025\"} 91", with: "le=\"0.025\"} 111")
        let window = sampler.record(environment: "qa", metrics: later, at: start.addingTimeInterval(4))
        #expect(window.requests == 20 && window.requestsPerSecond == 5 && window.errorRate == 0 && window.window == "last 4 s")
        #expect(window.p99Milliseconds == 25)
        // A restarted server (counters back near zero) starts a new window instead of a negative one.
        let restarted = sampler.record(environment: "qa", metrics: "stagecraft_requests_total{} 3\n", at: start.addingTimeInterval(8))
        #expect(restarted.requests == 3 && restarted.requestsPerSecond == nil)
    }

    @Test func formsAndQueries() {
        let fields = Form.parse("model=breast-cancer&reason=recall+dropped%20on+March%26April&csrf=&bad=%zz&env")
        #expect(fields["model"] == "breast-cancer")
        #expect(fields["reason"] == "recall dropped on March&April")
        #expect(fields["csrf"] == "" && fields["env"] == "" && fields["bad"] == nil)
        let many = (0..<1000).map { "f\($0)=x" }.joined(separator: "&")
        #expect(Form.parse(many).count == 64)
    }

    @Test func theConfirmationDiff() {
        let before = "a\nb\nc\nd\n    version: ~\n    source: ~\ne\nf\ng\nh\n"
        let after = "a\nb\nc\nd\n    version: b35c54cc93bb\n    source: 5febcc88eb44\ne\nf\ng\nh\n"
        let lines = Pages.diff(before, after).map { "\($0.mark)\($0.text)" }
        #expect(
            lines == [
                "_  b", "_  c", "_  d", "--     version: ~", "--     source: ~", "++     version: b35c54cc93bb", "++     source: 5febcc88eb44",
                "_  e", "_  f", "_  g",
            ])
        #expect(Pages.diff(before, before).map(\.text) == ["  (no change: already pinned)"])
    }

    @Test func markupIsEscapedAndVersionsKeepTheirColour() {
        #expect(Html.escape(#"<script>alert("x")</script> & 'y'"#) == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;")
        // A model's versions take the palette in build order; the next model starts again; others by digest.
        let now = Date()
        let colours = VersionColours(builds: [
            ("penguins", "bbbb", now), ("breast-cancer", "aaaa", now), ("breast-cancer", "cccc", now.addingTimeInterval(1)),
        ])
        #expect(colours.colour("aaaa") == "#1f77b4" && colours.colour("cccc") == "#d62728" && colours.colour("bbbb") == "#1f77b4")
        #expect(colours.colour("b35c54cc93bb4532") == colours.colour("b35c54cc93bbffff"))
        let pages = Pages(toolVersion: "0", repository: "<repo>")
        let page = pages.page(title: "<t>", body: "<p>body</p>", viewer: .anonymous, environments: ["dev"], commit: "abc")
        #expect(page.contains("<title>&lt;t&gt; · Stagecraft</title>") && page.contains("<p>body</p>") && page.contains("&lt;repo&gt;"))
        #expect(!page.contains("/logout"))
    }

    @Test func theDriftChartDrawsTheLimitAndMarksWhatPassesIt() {
        let drift = [
            FeatureDrift(name: "bill_length_mm", kind: .numeric, rows: 120, psi: 0.9, ks: 0.5, ksPValue: 0.0001),
            FeatureDrift(name: "<island>", kind: .categorical, rows: 120, psi: 0.05, chiSquared: 1, chiSquaredDegrees: 2, chiSquaredPValue: 0.6),
        ]
        let svg = Charts.drift(drift, threshold: nil)
        #expect(svg.components(separatedBy: "fill=\"#c62f3f\"").count == 2)  // one bar past the limit
        #expect(svg.contains("stroke-dasharray") && svg.contains("limit 0.2") && svg.contains("&lt;island&gt;"))
        #expect(svg.contains("psi 0.9, p 0.0001") && svg.contains("psi 0.05, p 0.6"))
        // An environment's own limit (monitor.psi) is drawn and judged by instead.
        let strict = Charts.drift(drift, threshold: Threshold(comparison: .atMost, value: 0.01))
        #expect(strict.components(separatedBy: "fill=\"#c62f3f\"").count == 3 && strict.contains("limit 0.01"))
    }
}
