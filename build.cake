// EdgeKube build script:  dotnet tool restore && dotnet cake [--target=Publish]
// Targets: Clean, Build, Test (default, after Build), Publish, Package, PrepareSdCard, Bench.
// The shell scripts stay the single source of truth (CI and the README run them directly);
// these targets call them rather than repeat their logic.
//   --configuration=Release            for Clean and Build
//   --rids=linux-x64,linux-arm64       for Publish and Package
//   --image=FILE --join=FILE           for PrepareSdCard (also --deb=FILE, --firstboot=auto|cloud-init|script)
//   --scenarios=footprint,startup      for Bench (default: every scenario)

var target = Argument("target", "Test");
var configuration = Argument("configuration", "Release");
var rids = Argument("rids", "linux-x64,linux-arm64")
    .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

var solution = File("EdgeKube.sln");
var artifacts = Directory("artifacts");

// Runs a command from the repository root and fails the target when it fails.
void Run(string command, string arguments)
{
    Information("> {0} {1}", command, arguments);
    var exitCode = StartProcess(command, new ProcessSettings
    {
        Arguments = arguments,
        WorkingDirectory = MakeAbsolute(Directory(".")),
    });
    if (exitCode != 0)
    {
        throw new CakeException($"'{command} {arguments}' failed with exit code {exitCode}.");
    }
}

Task("Clean")
    .Description("Removes build outputs (dotnet clean) and artifacts/.")
    .Does(() =>
{
    DotNetClean(solution, new DotNetCleanSettings { Configuration = configuration });
    if (DirectoryExists(artifacts))
    {
        DeleteDirectory(artifacts, new DeleteDirectorySettings { Recursive = true, Force = true });
    }
});

Task("Build")
    .Description("dotnet build EdgeKube.sln.")
    .Does(() =>
{
    DotNetBuild(solution, new DotNetBuildSettings { Configuration = configuration });
});

Task("Test")
    .Description("The whole test suite, exactly as the README and CI run it (scripts/test.sh; needs root).")
    .IsDependentOn("Build")
    .Does(() =>
{
    Run("bash", "scripts/test.sh");
});

Task("Publish")
    .Description("edgekube-agent (stripped NativeAOT, fails on any trim/AOT warning) and edgekube-master (self-contained single file) into artifacts/publish/<rid>/ (scripts/publish.sh).")
    .Does(() =>
{
    Run("bash", "scripts/publish.sh " + string.Join(" ", rids));
});

Task("Package")
    .Description("artifacts/deb/edgekube-{agent,master}_<version>_<arch>.deb and artifacts/edgekube-<version>-<rid>.tar.gz (scripts/package-deb.sh).")
    .IsDependentOn("Publish")
    .Does(() =>
{
    Run("bash", "scripts/package-deb.sh " + string.Join(" ", rids));
});

Task("PrepareSdCard")
    .Description("Writes the board setup into the boot partition of a Raspberry Pi OS image: --image=FILE --join=FILE [--deb=FILE] [--firstboot=auto|cloud-init|script] (scripts/prepare-sd-card.sh).")
    .Does(() =>
{
    var image = Argument<string>("image", null) ?? throw new CakeException("--image=FILE is required (a Raspberry Pi OS image file or the SD card's device)");
    var join = Argument<string>("join", null) ?? throw new CakeException("--join=FILE is required (what `edgekube-master node add NAME` printed)");
    var arguments = $"scripts/prepare-sd-card.sh --image \"{MakeAbsolute(File(image))}\" --join \"{MakeAbsolute(File(join))}\"";
    if (Argument<string>("deb", null) is { } deb)
    {
        arguments += $" --deb \"{MakeAbsolute(File(deb))}\"";
    }

    arguments += " --firstboot " + Argument("firstboot", "auto");
    Run("bash", arguments);
});

Task("Bench")
    .Description("Benchmarks (bench/run.sh).")
    .Does(() =>
{
    if (!FileExists("bench/run.sh"))
    {
        throw new CakeException("bench/run.sh not found: there are no benchmarks to run yet.");
    }
    // --scenarios=footprint,startup runs those only (bench/run.sh takes the same names); the default runs them all.
    var scenarios = Argument("scenarios", "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    Run("bash", string.Join(" ", new[] { "bench/run.sh" }.Concat(scenarios)));
});

Task("Default")
    .IsDependentOn("Test");

RunTarget(target);
