import Foundation
import StagecraftCommands
import StagecraftTesting
import Testing

/// Builds `model` in `scratch` in-process (`stagecraft build MODEL --output json`) and gives its full digest; the build
/// must succeed.
func builtDigest(_ model: String, in scratch: ScratchRepository) async throws -> String {
    let built = await Stagecraft.execute(["build", model, "--repo", scratch.path, "--output", "json"])
    #expect(built.exitCode == 0, "\(built.errorOutput)")
    let report = try JSONSerialization.jsonObject(with: Data(built.output.utf8)) as? [String: Any]
    return try #require(report?["digest"] as? String)
}
