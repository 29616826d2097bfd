# Make the Windows release archive from dist\cssadmin.exe (the twin of packaging/make-release.sh).
#
#   usage: pwsh packaging/make-release.ps1
#
# Needs dist\cssadmin.exe and what build\freeze.ps1 left in build\work for it, README.md and
# SECURITY.md in the repository root. Makes dist\release\cssadmin-<version>-windows-x86_64.zip
# holding one folder with cssadmin.exe, README.md, SECURITY.md, sbom.cdx.json and SHA256SUMS
# (sha256sum format: "<hex>  <name>", LF line ends, covering every other file), and next to it
# <zip>.sha256, the value to publish. Not run on this project's own machines (Linux).
$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

$root = (Resolve-Path (Join-Path $PSScriptRoot "..")).Path
Set-Location $root
$binary = "dist\cssadmin.exe"
$work = "build\work"
foreach ($needed in @($binary, "$work\bundle-contents.json", "$work\build-facts.json")) {
    if (-not (Test-Path $needed)) { throw "make-release.ps1: $needed is missing: run build\freeze.ps1 first" }
}
foreach ($doc in @("README.md", "SECURITY.md")) {
    if (-not (Test-Path $doc)) { throw "make-release.ps1: $doc is missing from the repository root; the release must carry it" }
}

$first = (& $binary --version | Select-Object -First 1)
if ($LASTEXITCODE -ne 0 -or $first -notmatch '^cssadmin (\S+)$') { throw "make-release.ps1: cannot read the version from $binary --version" }
$version = $Matches[1]

$name = "cssadmin-$version-windows-x86_64"
$release = "dist\release"
$folder = Join-Path $release $name
$zip = Join-Path $release "$name.zip"
Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $folder, $zip, "$zip.sha256"
New-Item -ItemType Directory -Force $folder | Out-Null

Copy-Item $binary (Join-Path $folder "cssadmin.exe")
Copy-Item README.md, SECURITY.md $folder
& "$work\venv\Scripts\python.exe" packaging\sbom.py --binary (Join-Path $folder "cssadmin.exe") --work $work `
    --lock requirements\build.lock --version $version --platform windows-x86_64 `
    --out (Join-Path $folder "sbom.cdx.json")
if ($LASTEXITCODE -ne 0) { throw "make-release.ps1: sbom.py failed" }

$lines = Get-ChildItem -File $folder | Where-Object Name -ne "SHA256SUMS" |
    Sort-Object -Property Name -Culture ([Globalization.CultureInfo]::InvariantCulture) |
    ForEach-Object { "$((Get-FileHash -Algorithm SHA256 $_.FullName).Hash.ToLower())  $($_.Name)" }
[IO.File]::WriteAllText((Join-Path (Resolve-Path $folder) "SHA256SUMS"), (($lines -join "`n") + "`n"))

Compress-Archive -Path $folder -DestinationPath $zip -CompressionLevel Optimal
$zipHash = (Get-FileHash -Algorithm SHA256 $zip).Hash.ToLower()
[IO.File]::WriteAllText((Join-Path (Resolve-Path $release) "$name.zip.sha256"), "$zipHash  $name.zip`n")

Write-Host "make-release.ps1: $zip"
Get-Content (Join-Path $folder "SHA256SUMS")
Write-Host "archive: $zipHash  $name.zip"
