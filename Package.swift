// swift-tools-version:6.0
// A data-parallel trainer with In-Place Activated BatchNorm (InPlace-ABN), synchronized over MPI.
// Layering (see docs/design.md#layering): C bridges -> ABNTensor -> ABNLayers -> ABNComm; ABNTensor -> ABNData; all -> ABNTraining -> abn.
import PackageDescription

let package = Package(
    name: "InPlaceABN",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "abn", targets: ["abn"]),
        .library(name: "ABNTensor", targets: ["ABNTensor"]),
        .library(name: "ABNLayers", targets: ["ABNLayers"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        // Vector kernels compiled per instruction set (AVX-512, AVX2+FMA, baseline), chosen at run time.
        .target(name: "CKernels"),
        .target(name: "ABNTensor", dependencies: ["CBLAS", "CDNNL", "CKernels"]),
        .target(name: "ABNLayers", dependencies: ["ABNTensor", "CKernels"]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        .target(name: "ABNData", dependencies: ["ABNTensor", "CZlib", "CPNG", "CTurboJPEG"]),
        .target(name: "ABNComm", dependencies: ["ABNTensor", "ABNLayers", "CMPI"]),
        .target(name: "ABNTraining", dependencies: ["ABNTensor", "ABNLayers", "ABNComm", "ABNData", "Yams"]),
        .executableTarget(name: "abn", dependencies: [
            "ABNTensor",
            "ABNLayers",
            "ABNComm",
            "ABNData",
            "ABNTraining",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "ABNTestSupport", dependencies: ["ABNTensor", "ABNLayers", "ABNComm", "ABNData"], path: "Tests/ABNTestSupport"),
        .testTarget(name: "ABNTensorTests", dependencies: ["ABNTensor", "ABNTestSupport"]),
        .testTarget(name: "ABNLayersTests", dependencies: ["ABNLayers", "ABNComm", "ABNTensor", "ABNTestSupport", "ABNTraining"]),
        .testTarget(name: "ABNDataTests", dependencies: ["ABNData", "ABNTensor", "ABNTestSupport"]),
        .testTarget(name: "ABNCommTests", dependencies: ["ABNComm", "ABNLayers", "ABNTensor"]),
        .testTarget(name: "ABNTrainingTests", dependencies: ["ABNTraining", "ABNComm", "ABNData", "ABNLayers", "ABNTensor", "ABNTestSupport", "CZlib"]),
        // Runs the release binary (alone and under mpirun); build it first: swift build -c release.
        .testTarget(name: "IntegrationTests", dependencies: ["ABNData", "ABNTestSupport"]),
    ]
)
