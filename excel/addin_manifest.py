"""The Office add-in's manifest (the XML "add-in only" manifest: custom functions need it), written for
one server address. Excel reads it once, at sideload: every URL in it points at that server's /addin/.

Each server address gets its own add-in id (derived from the address), so a test server and the
everyday one can be sideloaded side by side.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import quoteattr

from finsent_local import __version__
from finsent_local.excel.functions import ADDIN_NAMESPACE

ADDIN_PATH = "/addin"


class ManifestError(ValueError):
    pass


def addin_id(base_url: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "finsent-local-addin:" + base_url))


def manifest_xml(base_url: str, api_key: str | None = None) -> str:
    """The manifest for the server at base_url (https://localhost:PORT). With an API key, the functions'
    page address carries it in its fragment (#key=...), which browsers never send to the server."""
    parts = urlsplit(base_url)
    if parts.scheme != "https" or not parts.hostname:
        raise ManifestError(f"the add-in needs the server's https:// address (got {base_url!r}); "
                            "Excel loads add-ins over HTTPS only: start the server with --https-port")
    base = base_url.rstrip("/")
    addin = base + ADDIN_PATH
    # URL-encoded: a key with "&" would be cut short and one with "%" would stop the functions loading
    # (functions.js decodes it once).
    page = f"{addin}/functions.html" + (f"#key={quote(api_key, safe='')}" if api_key else "")
    a = quoteattr  # every value goes into an attribute, quoted and escaped
    major = ".".join((__version__.split(".") + ["0", "0", "0"])[:4])
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<OfficeApp xmlns="http://schemas.microsoft.com/office/appforoffice/1.1"
           xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
           xmlns:bt="http://schemas.microsoft.com/office/officeappbasictypes/1.0"
           xmlns:ov="http://schemas.microsoft.com/office/taskpaneappversionoverrides"
           xsi:type="TaskPaneApp">
  <Id>{addin_id(base)}</Id>
  <Version>{major}</Version>
  <ProviderName>FinSent Local</ProviderName>
  <DefaultLocale>en-US</DefaultLocale>
  <DisplayName DefaultValue="FinSent Local"/>
  <Description DefaultValue="Financial sentiment of text from the FinSent Local server on this computer: =LOCAL.FINSENT(A2,&quot;7&quot;)."/>
  <IconUrl DefaultValue={a(addin + "/icon-32.png")}/>
  <HighResolutionIconUrl DefaultValue={a(addin + "/icon-64.png")}/>
  <SupportUrl DefaultValue={a(base + "/")}/>
  <Hosts>
    <Host Name="Workbook"/>
  </Hosts>
  <Requirements>
    <Sets DefaultMinVersion="1.1">
      <Set Name="CustomFunctionsRuntime" MinVersion="1.1"/>
      <Set Name="SharedRuntime" MinVersion="1.1"/>
    </Sets>
  </Requirements>
  <DefaultSettings>
    <SourceLocation DefaultValue={a(page)}/>
  </DefaultSettings>
  <Permissions>ReadWriteDocument</Permissions>
  <VersionOverrides xmlns="http://schemas.microsoft.com/office/taskpaneappversionoverrides" xsi:type="VersionOverridesV1_0">
    <Hosts>
      <Host xsi:type="Workbook">
        <Runtimes>
          <Runtime resid="Shared.Url" lifetime="long"/>
        </Runtimes>
        <AllFormFactors>
          <ExtensionPoint xsi:type="CustomFunctions">
            <Script>
              <SourceLocation resid="Functions.Script.Url"/>
            </Script>
            <Page>
              <SourceLocation resid="Shared.Url"/>
            </Page>
            <Metadata>
              <SourceLocation resid="Functions.Metadata.Url"/>
            </Metadata>
            <Namespace resid="Functions.Namespace"/>
          </ExtensionPoint>
        </AllFormFactors>
        <DesktopFormFactor>
          <GetStarted>
            <Title resid="GetStarted.Title"/>
            <Description resid="GetStarted.Description"/>
            <LearnMoreUrl resid="GetStarted.LearnMoreUrl"/>
          </GetStarted>
          <FunctionFile resid="Shared.Url"/>
          <ExtensionPoint xsi:type="PrimaryCommandSurface">
            <OfficeTab id="TabHome">
              <Group id="FinSent.Group">
                <Label resid="Group.Label"/>
                <Icon>
                  <bt:Image size="16" resid="Icon.16x16"/>
                  <bt:Image size="32" resid="Icon.32x32"/>
                  <bt:Image size="80" resid="Icon.80x80"/>
                </Icon>
                <Control xsi:type="Button" id="FinSent.FreezeButton">
                  <Label resid="FreezeButton.Label"/>
                  <Supertip>
                    <Title resid="FreezeButton.Label"/>
                    <Description resid="FreezeButton.Tooltip"/>
                  </Supertip>
                  <Icon>
                    <bt:Image size="16" resid="Icon.16x16"/>
                    <bt:Image size="32" resid="Icon.32x32"/>
                    <bt:Image size="80" resid="Icon.80x80"/>
                  </Icon>
                  <Action xsi:type="ShowTaskpane">
                    <TaskpaneId>FinSent.Taskpane</TaskpaneId>
                    <SourceLocation resid="Shared.Url"/>
                  </Action>
                </Control>
              </Group>
            </OfficeTab>
          </ExtensionPoint>
        </DesktopFormFactor>
      </Host>
    </Hosts>
    <Resources>
      <bt:Images>
        <bt:Image id="Icon.16x16" DefaultValue={a(addin + "/icon-16.png")}/>
        <bt:Image id="Icon.32x32" DefaultValue={a(addin + "/icon-32.png")}/>
        <bt:Image id="Icon.80x80" DefaultValue={a(addin + "/icon-80.png")}/>
      </bt:Images>
      <bt:Urls>
        <bt:Url id="Shared.Url" DefaultValue={a(page)}/>
        <bt:Url id="Functions.Script.Url" DefaultValue={a(addin + "/functions.js")}/>
        <bt:Url id="Functions.Metadata.Url" DefaultValue={a(addin + "/functions.json")}/>
        <bt:Url id="GetStarted.LearnMoreUrl" DefaultValue={a(base + "/")}/>
      </bt:Urls>
      <bt:ShortStrings>
        <bt:String id="Functions.Namespace" DefaultValue="{ADDIN_NAMESPACE}"/>
        <bt:String id="GetStarted.Title" DefaultValue="FinSent Local is ready"/>
        <bt:String id="Group.Label" DefaultValue="FinSent"/>
        <bt:String id="FreezeButton.Label" DefaultValue="Freeze as values"/>
      </bt:ShortStrings>
      <bt:LongStrings>
        <bt:String id="GetStarted.Description" DefaultValue="Type =LOCAL.FINSENT(A2,&quot;7&quot;) in a cell. The FinSent Local server must be running (finsent serve --https-port)."/>
        <bt:String id="FreezeButton.Tooltip" DefaultValue="Replace FinSent formulas in the selection or the sheet by their values, so the results stay without the server."/>
      </bt:LongStrings>
    </Resources>
  </VersionOverrides>
</OfficeApp>
"""
