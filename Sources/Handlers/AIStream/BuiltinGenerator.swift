/// The `builtin` backend: a word chain (order-1 Markov) over an embedded corpus, walked from
/// a seed taken from the prompt. It needs no download, reads like text, and gives the same
/// answer to the same prompt, which makes it a good default and a good test subject.
struct BuiltinGenerator: TokenBackend {
    /// Tokens per second; 0 = no pacing.
    let tokensPerSecond: Double

    /// Built once, on first use.
    private static let chain = WordChain(corpus: BuiltinCorpus.text)

    func generate(prompt: String, maxTokens: Int, emit: (String) async -> Void) async throws {
        var walk = Self.chain.walk(seed: Self.seed(of: prompt))
        let start = ContinuousClock.now
        for index in 0..<maxTokens {
            if tokensPerSecond > 0 {
                try await Task.sleep(until: start + .seconds(Double(index) / tokensPerSecond))
            }
            try Task.checkCancellation()
            await emit(walk.next(first: index == 0))
        }
    }

    /// FNV-1a: a seed that is the same in every process (unlike `Hasher`).
    static func seed(of prompt: String) -> UInt64 {
        prompt.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
    }
}

/// Words and who follows whom in the corpus.
struct WordChain: Sendable {
    private let words: [String]
    /// The same words with their leading space ready, so a token costs no allocation.
    private let spacedWords: [String]
    /// For each word, the indices of the words that follow it somewhere in the corpus.
    private let successors: [[Int]]
    /// Words that begin a sentence: where every answer starts.
    private let sentenceStarts: [Int]

    init(corpus: String) {
        let tokens = corpus.split(whereSeparator: \.isWhitespace).map(String.init)
        var indexOf: [String: Int] = [:]
        var words: [String] = []
        let sequence = tokens.map { word in
            if let index = indexOf[word] { return index }
            indexOf[word] = words.count
            words.append(word)
            return words.count - 1
        }
        var successors = Array(repeating: [Int](), count: words.count)
        // The corpus wraps around, so every word has a successor.
        for (position, word) in sequence.enumerated() {
            successors[word].append(sequence[(position + 1) % sequence.count])
        }
        self.words = words
        self.spacedWords = words.map { " " + $0 }
        self.successors = successors
        self.sentenceStarts = sequence.indices
            .filter { $0 == 0 || Self.endsSentence(words[sequence[$0 - 1]]) }
            .map { sequence[$0] }
    }

    func walk(seed: UInt64) -> Walk { Walk(chain: self, state: seed) }

    private static func endsSentence(_ word: String) -> Bool {
        word.last.map { ".!?".contains($0) } ?? false
    }

    struct Walk {
        let chain: WordChain
        /// Knuth's MMIX linear congruential generator: tiny, seedable, enough to pick words.
        var state: UInt64
        var current: Int?

        /// The next token: a word with a leading space (none on the first).
        mutating func next(first: Bool) -> String {
            let choices = current.map { chain.successors[$0] } ?? chain.sentenceStarts
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let word = choices[Int((state >> 33) % UInt64(choices.count))]
            current = word
            return first ? chain.words[word] : chain.spacedWords[word]
        }
    }
}
