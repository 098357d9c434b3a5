import Foundation

/// Writes a YAML file into a Swift source as a raw string literal (used by the
/// EmbedDefaultConfig build plugin). Usage: conduit-embed-config INPUT OUTPUT
@main
struct EmbedConfig {
    static func main() throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 3 else {
            FileHandle.standardError.write(Data("usage: conduit-embed-config INPUT.yaml OUTPUT.swift\n".utf8))
            exit(2)
        }
        let text = try String(contentsOfFile: arguments[1], encoding: .utf8)
        // A raw string delimiter longer than any run of '#' in the text can't be closed early.
        let longestRun = text.split(whereSeparator: { $0 != "#" }).map(\.count).max() ?? 0
        let hashes = String(repeating: "#", count: longestRun + 1)
        let source = """
            // Generated from config/conduit.yaml by the EmbedDefaultConfig plugin. Do not edit.
            enum EmbeddedConfiguration {
                static let yaml = \(hashes)\"\"\"
            \(text)
            \"\"\"\(hashes)
            }

            """
        try source.write(toFile: arguments[2], atomically: true, encoding: .utf8)
    }
}
