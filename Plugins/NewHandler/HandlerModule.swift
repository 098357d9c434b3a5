/// The names a new handler module gets, derived from `<Name>` and checked.
struct HandlerModule {
    /// UpperCamelCase, as given: `RateLimit`.
    let name: String
    /// The kind YAML names: `rate-limit`.
    let kind: String
    /// The route pattern it is registered under: `rate-limit.*` unless given.
    let route: String

    var handlerType: String { "\(name)Handler" }
    var target: String { "Conduit\(name)" }
    var testTarget: String { "Conduit\(name)Tests" }
    var sourceDirectory: String { "Sources/Handlers/\(name)" }
    var testDirectory: String { "Tests/\(testTarget)" }
    /// A route the generated test sends to: the route itself, or one under its prefix.
    var sampleRoute: String { route.hasSuffix(".*") ? String(route.dropLast()) + "hello" : route }
    /// The operation the generated test sends: `hello`, or nothing under an exact route.
    var sampleOperation: String { route.hasSuffix(".*") ? "hello" : "" }
    /// The route of the handler's push under its mount (as `HandlerContext.route("greeted")`).
    var pushRoute: String { route.hasSuffix(".*") ? String(route.dropLast()) + "greeted" : route + ".greeted" }

    init(name: String, route: String?) throws {
        guard let first = name.unicodeScalars.first, ("A"..."Z").contains(first),
              name.count <= 40, name.unicodeScalars.allSatisfy(Self.isIdentifierCharacter) else {
            throw ScaffoldError("'\(name)' is not a valid handler name: use UpperCamelCase letters and digits, starting with a capital (e.g. Greet, RateLimit), at most 40 characters")
        }
        guard !name.hasSuffix("Tests") else {
            throw ScaffoldError("'\(name)' is not a valid handler name: a name ending in 'Tests' would clash with test targets")
        }
        self.name = name
        kind = Self.kebabCase(name)
        self.route = route ?? "\(kind).*"
        guard Self.isRoutePattern(self.route) else {
            throw ScaffoldError("'\(self.route)' is not a valid route: use dotted words of [A-Za-z0-9_-], optionally ending in '.*' (e.g. greet or greet.*)")
        }
        guard !self.route.hasPrefix("internal.") else {
            throw ScaffoldError("'\(self.route)' is not a valid route: routes under 'internal.' are IPC-only")
        }
    }

    private static func isIdentifierCharacter(_ scalar: Unicode.Scalar) -> Bool {
        ("A"..."Z").contains(scalar) || ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar)
    }

    /// A word starts at a capital after a lower-case letter or digit, or at the last capital of
    /// a run followed by a lower-case letter: `HTTPProxy` is `http-proxy`, not `h-t-t-p-proxy`.
    private static func kebabCase(_ name: String) -> String {
        let characters = Array(name)
        var kind = ""
        for (index, character) in characters.enumerated() {
            if character.isUppercase, index > 0 {
                let previous = characters[index - 1]
                let next = index + 1 < characters.count ? characters[index + 1] : nil
                if !previous.isUppercase || next?.isLowercase == true { kind += "-" }
            }
            kind += character.lowercased()
        }
        return kind
    }

    private static func isRoutePattern(_ route: String) -> Bool {
        var words = route.split(separator: ".", omittingEmptySubsequences: false)
        if words.count > 1, words.last == "*" { words.removeLast() }
        return !words.isEmpty && words.allSatisfy { word in
            !word.isEmpty && word.unicodeScalars.allSatisfy { isIdentifierCharacter($0) || $0 == "_" || $0 == "-" }
        }
    }
}
