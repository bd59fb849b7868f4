# Build the Windows bundle and installer.
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build_windows.ps1 [-Variant cuda|cpu|classical]
# Needs: Python 3.11 with the app installed for the variant (for cuda: first
#   pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128
# then pip install -c constraints.txt -e ".[diffusion,packaging]"), and Inno Setup 6 (iscc on PATH).
param([string]$Variant = "")
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")
if ($Variant) { $env:INPAINT_STUDIO_VARIANT = $Variant }
$Version = python -c "import sys; sys.path.insert(0, 'packaging'); import bundle_config as c; print(c.app_version())"
$Variant = python -c "import sys; sys.path.insert(0, 'packaging'); import bundle_config as c; print(c.variant().name)"
$t0 = Get-Date
python -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath "build\pyinstaller-$Variant" packaging\inpaint-studio.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }
$env:QT_QPA_PLATFORM = "offscreen"
& "dist\InpaintStudio\inpaint-studio.exe" --self-test
if ($LASTEXITCODE -ne 0) { throw "the bundle's self-test failed" }
Remove-Item Env:QT_QPA_PLATFORM
iscc "/DAppVersion=$Version" "/DVariant=$Variant" packaging\windows\inpaint-studio.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
"Built Inpaint Studio $Version ($Variant) in $([int]((Get-Date) - $t0).TotalSeconds) s: dist\InpaintStudio-$Version-windows-x64-$Variant-setup.exe"
