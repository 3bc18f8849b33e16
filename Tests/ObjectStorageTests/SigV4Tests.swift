import Foundation
import ObjectStorage
import StagecraftTesting
import Testing

/// Signature Version 4 as botocore computes it: the same requests, built by boto3's own S3 client and captured before
/// sending, signed by both at the same instant give the same Authorization header.
@Suite struct SigV4Tests {
    struct Case: Decodable {
        var name: String
        var method: String
        var url: String
        var headers: [String: String]
        var authorization: String
        var body: String
        var key: String?
        var token: String?
        var region: String
    }

    static let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    static let instant = ISO8601DateFormatter().date(from: "2026-12-03T20:15:30Z")!

    func botocoreCases() throws -> [Case] {
        let output = try ProcessRunner.run(S3Server.python, [Fixtures.packageRoot + "/Tests/Conformance/s3_signatures.py"])
        guard output.status == 0 else { throw ProcessFailure(command: "s3_signatures.py", output: output) }
        return try JSONDecoder().decode([Case].self, from: Data(output.stdout.utf8))
    }

    @Test func signaturesEqualBotocore() throws {
        guard S3Server.available else { Issue.record(Comment(rawValue: S3Server.missing)); return }
        let cases = try botocoreCases()
        #expect(cases.count >= 10)
        for item in cases {
            let url = try #require(URLComponents(string: item.url))
            let query = (url.percentEncodedQuery ?? "").split(separator: "&").map { pair in
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return (name: parts[0].removingPercentEncoding!, value: parts.count > 1 ? parts[1].removingPercentEncoding! : "")
            }
            let payloadHash = try #require(item.headers["x-amz-content-sha256"])
            // The payload hash botocore signed is the sha256 of the body it would send.
            let body = try #require(Data(base64Encoded: item.body))
            #expect(SigV4.payloadHash(body) == payloadHash, "\(item.name): payload hash")
            let extra = item.headers.filter { !["x-amz-date", "x-amz-content-sha256", "x-amz-security-token"].contains($0.key) }
            let request = SignableRequest(
                method: item.method, host: "\(url.host!):\(url.port!)", path: url.percentEncodedPath, query: query,
                headers: extra.map { (name: $0.key, value: $0.value) })
            let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: Self.secret, sessionToken: item.token)
            let signed = SigV4(region: item.region).sign(request, payloadHash: payloadHash, credentials: credentials, date: Self.instant)
            let authorization = signed.headers.first { $0.name == "Authorization" }?.value
            #expect(authorization == item.authorization, "\(item.name)")
            // The address of a key (unicode, reserved characters) is the one boto3 sends to.
            if let key = item.key {
                let client = S3Client(
                    endpoint: S3Endpoint(url: URL(string: "http://\(url.host!):\(url.port!)"), region: item.region, pathStyle: true),
                    credentials: credentials)
                let address = client.address(bucket: "models", key: key)
                #expect(address.path == url.percentEncodedPath, "\(item.name): path of \(key)")
                #expect(address.host == "\(url.host!):\(url.port!)")
            }
        }
    }

    @Test func virtualHostedAddresses() {
        let aws = S3Client(
            endpoint: S3Endpoint(region: "eu-west-1"), credentials: AWSCredentials(accessKeyID: "a", secretAccessKey: "b"))
        let address = aws.address(bucket: "team-models", key: "a b/ü.json")
        #expect(address.scheme == "https")
        #expect(address.host == "team-models.s3.eu-west-1.amazonaws.com")
        #expect(address.path == "/a%20b/%C3%BC.json")
    }

    @Test func credentialsComeFromTheStandardPlaces() throws {
        let scratch = try ScratchDirectory("aws")
        try scratch.write(
            """
            [default]
            aws_access_key_id = AKIADEFAULT
            aws_secret_access_key = default-secret
            [team]
            aws_access_key_id = AKIATEAM
            aws_secret_access_key = team-secret
            aws_session_token = team-token
            """, to: "credentials")
        try scratch.write(
            """
            [profile ci]
            region = eu-central-1
            aws_access_key_id = AKIACI
            aws_secret_access_key = ci-secret
            """, to: "config")
        let files = ["AWS_SHARED_CREDENTIALS_FILE": scratch.appending("credentials"), "AWS_CONFIG_FILE": scratch.appending("config")]
        // The environment first.
        let fromEnvironment = CredentialChain(
            environment: files.merging(["AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "env-secret"]) { $1 })
        #expect(fromEnvironment.credentials()?.accessKeyID == "AKIAENV")
        // Then the profile of the credentials file, then of the config file.
        #expect(CredentialChain(environment: files).credentials()?.accessKeyID == "AKIADEFAULT")
        let team = CredentialChain(environment: files.merging(["AWS_PROFILE": "team"]) { $1 }).credentials()
        #expect(team?.sessionToken == "team-token")
        let ci = CredentialChain(environment: files.merging(["AWS_PROFILE": "ci"]) { $1 })
        #expect(ci.credentials()?.secretAccessKey == "ci-secret")
        #expect(ci.region() == "eu-central-1")
        #expect(CredentialChain(environment: files.merging(["AWS_PROFILE": "none"]) { $1 }).credentials() == nil)
        // Their description never holds a secret.
        #expect(!"\(team!)".contains("team-secret") && !"\(team!)".contains("team-token"))
    }
}
