"""Types of the names ``mmcli/__init__.py`` exports lazily."""

from mmcli.api import Index as Index
from mmcli.api import MmcliWarning as MmcliWarning
from mmcli.api import classify as classify
from mmcli.api import ocr as ocr
from mmcli.api import write_keywords as write_keywords
from mmcli.errors import ImageLoadError as ImageLoadError
from mmcli.errors import IndexMissing as IndexMissing
from mmcli.errors import MmcliError as MmcliError
from mmcli.errors import OcrUnavailable as OcrUnavailable
from mmcli.errors import UsageError as UsageError
from mmcli.index.imports import ImportSummary as ImportSummary
from mmcli.index.sync import IndexSummary as IndexSummary
from mmcli.results import Classification as Classification
from mmcli.results import Hit as Hit
from mmcli.results import IndexInfo as IndexInfo
from mmcli.results import LabelScore as LabelScore
from mmcli.results import PictureText as PictureText
from mmcli.results import Segment as Segment
from mmcli.results import TextLine as TextLine
from mmcli.xmp.keywords import SidecarChange as SidecarChange

__version__: str
__all__: list[str]
