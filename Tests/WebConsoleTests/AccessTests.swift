import Foundation
import StagecraftTesting
import Testing
@testable import WebConsole

@Suite struct AccessTests {
    @Test func placeholder() {}
}
