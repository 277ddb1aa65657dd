// EdgeKube build script:  dotnet tool restore && dotnet cake [--target=Publish]
// Targets: Clean, Build, Test (default, after Build), Publish, Package, Bench.
// The shell scripts stay the single source of truth (CI and the README run them directly);
// these targets call them rather than repeat their logic.
//   --configuration=Release            for Clean and Build
//   --rids=linux-x64,linux-arm64       for Publish and Package

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
    .Description("NativeAOT edgekube-agent into artifacts/publish/<rid>/ (scripts/publish.sh): fails on any trim/AOT warning.")
    .Does(() =>
{
    Run("bash", "scripts/publish.sh " + string.Join(" ", rids));
});

Task("Package")
    .Description("artifacts/edgekube-agent-<version>-<rid>.tar.gz: the binary, systemd units, firmware-config/.")
    .IsDependentOn("Publish")
    .Does(() =>
{
    // Placeholder until there is a real board package (.deb): a tarball of what goes onto a board.
    var version = XmlPeek("Directory.Build.props", "/Project/PropertyGroup/Version");
    foreach (var rid in rids)
    {
        var name = $"edgekube-agent-{version}-{rid}";
        var staging = artifacts + Directory("package") + Directory(rid);
        var root = staging + Directory(name);
        EnsureDirectoryExists(staging);
        CleanDirectory(staging);
        EnsureDirectoryExists(root);

        CopyFileToDirectory(artifacts + Directory("publish") + Directory(rid) + File("edgekube-agent"), root);
        var units = GetFiles("systemd/*.service") + GetFiles("systemd/*.socket") + GetFiles("systemd/*.timer");
        if (units.Count > 0)
        {
            EnsureDirectoryExists(root + Directory("systemd"));
            CopyFiles(units, root + Directory("systemd"));
        }
        if (DirectoryExists("firmware-config"))
        {
            CopyDirectory("firmware-config", root + Directory("firmware-config"));
        }

        var tarball = MakeAbsolute(artifacts + File(name + ".tar.gz"));
        // tar keeps the binary's executable bit, which Cake's zip support would not.
        Run("tar", $"-czf \"{tarball}\" -C \"{MakeAbsolute(staging)}\" {name}");
        Information("{0}: {1:N0} bytes", tarball, new FileInfo(tarball.FullPath).Length);
    }
});

Task("Bench")
    .Description("Benchmarks (bench/run.sh).")
    .Does(() =>
{
    if (!FileExists("bench/run.sh"))
    {
        throw new CakeException("bench/run.sh not found: there are no benchmarks to run yet.");
    }
    Run("bash", "bench/run.sh");
});

Task("Default")
    .IsDependentOn("Test");

RunTarget(target);
