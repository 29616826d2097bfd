# Freeze cssadmin into dist\cssadmin.exe on Windows: the PowerShell twin of build/freeze.sh.
#
#   usage: pwsh build/freeze.ps1 [-Clean] [-Python PATH]
#
# Same steps as freeze.sh: a venv in build\work\venv gets exactly requirements\build.lock (wheels
# downloaded to build\work\wheels with --require-hashes, installed with --no-index --no-deps), then
# the project from a snapshot of its sources; build\build_facts.py writes the build facts and the
# runtime hook; PyInstaller builds build\cssadmin.spec with PYTHONHASHSEED=0 and SOURCE_DATE_EPOCH
# from HEAD; build\bundle_manifest.py lists the binary's contents for packaging\sbom.py.
# Not run on this project's own machines (Linux); the Windows CI workflow runs it.
[CmdletBinding()]
param(
    [switch]$Clean,
    [string]$Python = "python"
)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

function Invoke-Native {
    param([Parameter(Mandatory)][string]$Exe, [Parameter(ValueFromRemainingArguments)][string[]]$Arguments)
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "freeze.ps1: '$Exe $($Arguments -join ' ')' exited $LASTEXITCODE" }
}

$root = (Resolve-Path (Join-Path $PSScriptRoot "..")).Path
Set-Location $root
$work = Join-Path $root "build\work"
$venv = Join-Path $work "venv"
$vpy = Join-Path $venv "Scripts\python.exe"

$env:PYTHONHASHSEED = "0"
$env:PYTHONDONTWRITEBYTECODE = "1"
$env:PIP_DISABLE_PIP_VERSION_CHECK = "1"
$env:PYINSTALLER_CONFIG_DIR = Join-Path $work "pyinstaller-config"
if (-not $env:SOURCE_DATE_EPOCH) { $env:SOURCE_DATE_EPOCH = (git log -1 --format=%ct).Trim() }

if ($Clean) {
    Write-Host "freeze.ps1: clean: removing build\work and dist\cssadmin.exe"
    Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $work, (Join-Path $root "dist\cssadmin.exe")
}
New-Item -ItemType Directory -Force $work, (Join-Path $root "dist") | Out-Null

& $Python -c "import sys; sys.exit(sys.version_info[:2] != (3, 11))"
if ($LASTEXITCODE -ne 0) { throw "freeze.ps1: $Python is not CPython 3.11; the locks are for 3.11 (use -Python)" }

# --- the build venv, exactly the lock
$lockDigest = (Get-FileHash -Algorithm SHA256 requirements\build.lock).Hash.ToLower()
$stamp = Join-Path $venv ".build-lock-sha256"
if (-not (Test-Path $vpy) -or -not (Test-Path $stamp) -or ((Get-Content $stamp -Raw).Trim() -ne $lockDigest)) {
    Write-Host "freeze.ps1: creating $venv from requirements\build.lock"
    Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $venv, (Join-Path $work "wheels")
    Invoke-Native $Python -m venv $venv
    Invoke-Native $vpy -m pip download --quiet --require-hashes --no-deps --only-binary=:all: `
        -r requirements\build.lock -d (Join-Path $work "wheels")
    Invoke-Native $vpy -m pip install --quiet --no-index --find-links (Join-Path $work "wheels") `
        --require-hashes --no-deps -r requirements\build.lock
    Set-Content -NoNewline -Path $stamp -Value $lockDigest
}

# --- the project, from a snapshot of its sources (tracked and new, not ignored)
$src = Join-Path $work "src"
Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $src
New-Item -ItemType Directory -Force $src | Out-Null
$files = git ls-files --cached --others --exclude-standard -- pyproject.toml README.md "cssadmin/*"
if ($LASTEXITCODE -ne 0) { throw "freeze.ps1: git ls-files failed" }
foreach ($file in $files) {
    if (-not (Test-Path -LiteralPath $file -PathType Leaf)) { continue }
    $target = Join-Path $src $file
    New-Item -ItemType Directory -Force (Split-Path $target) | Out-Null
    Copy-Item -LiteralPath $file -Destination $target
}
if (-not (Test-Path (Join-Path $src "README.md"))) {
    Write-Warning "freeze.ps1: README.md is missing; building with an empty one"
    New-Item -ItemType File (Join-Path $src "README.md") | Out-Null
}
Invoke-Native $vpy -m pip install --quiet --no-deps --no-build-isolation --no-index --force-reinstall $src

# --- build facts for --version
if (-not $env:CSSADMIN_COMMIT) {
    $commit = (git rev-parse HEAD).Trim()
    $dirty = git status --porcelain -- pyproject.toml cssadmin build/cssadmin.spec build/entry.py requirements/build.lock
    if ($dirty) { $commit = "$commit-dirty" }
    $env:CSSADMIN_COMMIT = $commit
}
Invoke-Native $vpy build\build_facts.py $work
Write-Host "freeze.ps1: build facts: $(Get-Content (Join-Path $work 'rthook_build_info.py') | Select-Object -Last 1)"

# --- freeze
Remove-Item -Force -ErrorAction SilentlyContinue dist\cssadmin.exe
Invoke-Native $vpy -m PyInstaller --noconfirm --clean --log-level WARN `
    --distpath (Join-Path $root "dist") --workpath (Join-Path $work "pyinstaller") build\cssadmin.spec

# --- what went into the binary (for packaging\sbom.py); Out-File would add a BOM, so write bytes
$manifest = & $vpy build\bundle_manifest.py dist\cssadmin.exe
if ($LASTEXITCODE -ne 0) { throw "freeze.ps1: bundle_manifest.py failed" }
[IO.File]::WriteAllText((Join-Path $work "bundle-contents.json"), ($manifest -join "`n") + "`n")

# --- smoke test
Invoke-Native dist\cssadmin.exe --version
Invoke-Native dist\cssadmin.exe --help | Out-Null
$hash = (Get-FileHash -Algorithm SHA256 dist\cssadmin.exe).Hash.ToLower()
Write-Host "freeze.ps1: built dist\cssadmin.exe ($((Get-Item dist\cssadmin.exe).Length) bytes, sha256 $hash)"
