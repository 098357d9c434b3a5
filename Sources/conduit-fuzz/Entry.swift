#if FUZZING
/// libFuzzer's driver (built by scripts/fuzz.sh with -sanitize=fuzzer and -DFUZZING). SwiftPM
/// links an executable's entry point as `<module>_main`, so this starts libFuzzer itself
/// instead of relying on libFuzzer's own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The per-input callback, also exported under libFuzzer's conventional name.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@_cdecl("conduit_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return runDriver(&argc, &argv, fuzzOne)
}
#else
import Foundation

/// Without libFuzzer: replays corpus files (or folders of them) through the same target, so a
/// plain build checks every saved input and crash reproducer.
@main
struct ReplayCorpus {
    static func main() throws {
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            for file in try files(at: path) {
                let data = try Data(contentsOf: URL(fileURLWithPath: file))
                data.withUnsafeBytes { FuzzTarget.run($0) }
                count += 1
            }
        }
        print("conduit-fuzz: replayed \(count) inputs, no property failed")
    }

    private static func files(at path: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return [path] }
        return try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { path + "/" + $0 }
    }
}
#endif
