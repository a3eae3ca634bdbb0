# Creates .venv and installs FinSent Local into it, on Windows (PowerShell 5.1 or 7).
#   .\setup.ps1           the app: server, converter, CLI, Excel functions (compiles llama.cpp once, ~10 min)
#   .\setup.ps1 -Client   the Excel functions and `finsent excel` only, talking to a server elsewhere
#                         (WSL2 or another machine): no compiler needed
# If PowerShell refuses to run scripts: powershell -ExecutionPolicy Bypass -File .\setup.ps1
# This script only checks and calls: the build itself is llama_build\install.py, as in setup.sh.
param([switch]$Client)
$ErrorActionPreference = "Stop"
Set-Location -Path $PSScriptRoot

function Stop-Setup([string]$Message) {
    Write-Host $Message -ForegroundColor Red
    exit 1
}

# Python 3.10 or newer, through the py launcher (python.org's installer puts it in PATH).
$python = $null
if (Get-Command py -ErrorAction SilentlyContinue) {
    try {  # Windows PowerShell 5.1 turns a native command's redirected stderr into an error: caught here
        $version = & py -3 -c "import sys; print('%d.%d' % sys.version_info[:2])" 2>$null
        if ($LASTEXITCODE -eq 0 -and [version]$version -ge [version]"3.10") { $python = @("py", "-3") }
    } catch {
        $python = $null
    }
}
if (-not $python) {
    Stop-Setup ("Python 3.10 or newer is needed. Install it with:`n" +
                "  winget install --id Python.Python.3.12 -e`n" +
                "then open a new PowerShell and run .\setup.ps1 again.")
}

if (-not $Client) {
    # llama.cpp is compiled: CMake and the MSVC build tools (C++ workload) must be there first, checked
    # before anything is made, so a missing tool never leaves a half-made .venv behind.
    $missing = @()
    if (-not (Get-Command cmake -ErrorAction SilentlyContinue)) {
        $missing += "  winget install --id Kitware.CMake -e"
    }
    $vswhere = Join-Path ${env:ProgramFiles(x86)} "Microsoft Visual Studio\Installer\vswhere.exe"
    $vc = $null
    if (Test-Path $vswhere) {
        $vc = & $vswhere -latest -products * -requires Microsoft.VisualStudio.Component.VC.Tools.x86.x64 -property installationPath
    }
    if (-not $vc) {
        $missing += ('  winget install --id Microsoft.VisualStudio.2022.BuildTools -e --override ' +
                     '"--passive --wait --add Microsoft.VisualStudio.Workload.VCTools --includeRecommended"')
    }
    if ($missing.Count -gt 0) {
        Stop-Setup ("The local engine (llama.cpp) is compiled, and these are missing. Install them with:`n" +
                    ($missing -join "`n") + "`n" +
                    "then open a new PowerShell and run .\setup.ps1 again.`n" +
                    "Or, with no compiler: .\setup.ps1 -Client, and run the server in WSL2 or on another machine (docs/install.md: Windows).")
    }
}

$created = $false
if (-not (Test-Path ".venv\Scripts\python.exe")) {
    & $python[0] $python[1..($python.Count - 1)] -m venv .venv
    if ($LASTEXITCODE -ne 0) { Stop-Setup "could not create .venv" }
    $created = $true
}
$venvPython = Join-Path $PSScriptRoot ".venv\Scripts\python.exe"

function Invoke-Step([string[]]$Arguments, [string]$What) {
    & $venvPython @Arguments
    if ($LASTEXITCODE -ne 0) {
        if ($created) { Remove-Item -Recurse -Force .venv }  # no half-made environment left behind
        Stop-Setup "$What failed (see the messages above)"
    }
}

Invoke-Step @("-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade", "pip", "setuptools", "wheel") "upgrading pip"
if ($Client) {
    Invoke-Step @("-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", ".[excel]") "installing FinSent Local (client)"
    Write-Host "FinSent Local's Excel functions are installed in .venv. Next: .venv\Scripts\finsent excel --url http://SERVER:8000"
} else {
    if (-not $env:CMAKE_ARGS) { $env:CMAKE_ARGS = "-DLLAVA_BUILD=OFF" }
    Invoke-Step @("llama_build\install.py") "building llama-cpp-python"
    Invoke-Step @("-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", ".[engine,eval,excel]") "installing FinSent Local"
    Write-Host "FinSent Local is installed in .venv (run: .venv\Scripts\finsent --help)"
}
