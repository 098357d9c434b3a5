extension Int {
    /// The capacity a `ByteBuffer` grows to when it must hold this many bytes: the next power
    /// of two. What the budget charges for a buffer that grows as bytes are appended.
    var grownBufferCapacity: Int {
        self <= 1 ? self : 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount)
    }
}
